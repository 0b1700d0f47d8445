"""Personal data behind the database: masked columns for everyone, full values only through
functions that write the audit entry

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 14:00:00

Every backend gets `phone_masked`, `alt_phone_masked` and `id_number_masked` (what a role that
may not see personal data is shown) and `alt_phone_hash` (so an import can tell a changed
alternative phone without decrypting it). `crm init` and `crm db upgrade` fill them for rows
written before, with the key (a migration has none).

On PostgreSQL only the schema's owner may read the ciphertext (`*_enc`) and the look-up hashes
(`*_hash`) of `members`: a hash is as good as the number to someone holding the key, who can
try the 10,000 numbers a masked 182****0355 leaves. Every other login reads them only through
three SECURITY DEFINER functions, each of which writes its audit entry in the caller's
transaction before it returns anything, so a read-only transaction, or one that is rolled
back, gets nothing:

- `crm_reveal_members(ids, purpose, actor, role)`: the ciphertext of those members, for a
  manager or an administrator (anyone else: permission denied); one `view_personal` entry
  names them. The client decrypts with the key; without this function the key opens nothing.
- `crm_find_members(kind, value, detail, actor, role, label)`: the members whose phone hash
  (main or alternative phone), ID-number hash or phone tail is `value`; one `search_personal` entry. A role that sees
  personal data masked may make `privacy.search_limit_per_hour` of them an hour (setting;
  30 when unset): past that it gets NULL and a `search_limit` entry, which stays on record.
- `crm_update_member_seals(rows)`: an import's new phones and ID numbers, written only where
  the hash differs; returns which changed. It answers only by writing, so it is no oracle.

Settings hold a rule the database applies (the search limit) and managers' decisions, so only
managers and administrators may change them (`crm_manager`, `crm_admin`).

`actor`, `role` and `label` count only for the owner acting as someone (`crm --as`): for any
other login the audit trigger of 0005 writes the login and its CRM role.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SEALED = (
    "phone_enc",
    "phone_hash",
    "alt_phone_enc",
    "alt_phone_hash",
    "id_number_enc",
    "id_number_hash",
)
FULL_ROLES = "('manager', 'admin')"

FUNCTIONS = """
CREATE OR REPLACE FUNCTION crm_reveal_members(
    p_ids bigint[], p_purpose text, p_actor text DEFAULT NULL, p_role text DEFAULT NULL)
RETURNS TABLE (member_id integer, phone_token varchar, alt_phone_token varchar,
               id_number_token varchar)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
DECLARE
    found integer[];
BEGIN
    IF NOT (crm_is_owner() OR COALESCE(crm_role_of(session_user) IN {full}, false)) THEN
        RAISE EXCEPTION '只有经理和管理员可以查看完整的个人信息' USING ERRCODE = '42501';
    END IF;
    SELECT array_agg(m.id ORDER BY m.id) INTO found FROM members m
    WHERE m.id = ANY (p_ids)
      AND (m.phone_enc IS NOT NULL OR m.alt_phone_enc IS NOT NULL OR m.id_number_enc IS NOT NULL);
    IF found IS NULL THEN
        RETURN;
    END IF;
    -- The entry first: if it cannot be written, nothing is returned.
    INSERT INTO audit_log (at, actor, role, action, entity, entity_id, detail)
    VALUES (now(), COALESCE(p_actor, session_user), COALESCE(p_role, 'admin'), 'view_personal',
            'members', CASE WHEN cardinality(found) = 1 THEN found[1]::text END,
            left(p_purpose, 200) || '；完整显示 ' || cardinality(found) || ' 人：'
            || array_to_string(found[1:200], ',')
            || CASE WHEN cardinality(found) > 200 THEN '…' ELSE '' END);
    RETURN QUERY SELECT m.id, m.phone_enc, m.alt_phone_enc, m.id_number_enc
                 FROM members m WHERE m.id = ANY (found) ORDER BY m.id;
END $$;

CREATE OR REPLACE FUNCTION crm_find_members(
    p_kind text, p_value text, p_detail text,
    p_actor text DEFAULT NULL, p_role text DEFAULT NULL, p_label text DEFAULT NULL)
RETURNS integer[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
DECLARE
    owner boolean := crm_is_owner();
    who text := CASE WHEN owner THEN COALESCE(p_actor, session_user) ELSE session_user END;
    acting text := CASE WHEN owner THEN COALESCE(p_role, 'admin')
                        ELSE crm_role_of(session_user) END;
    setting text;
    lim integer := 30;
    done integer;
    found integer[];
BEGIN
    IF acting IS NULL THEN
        RAISE EXCEPTION '没有 CRM 角色的登录不能查找客户' USING ERRCODE = '42501';
    END IF;
    IF p_kind NOT IN ('phone', 'id_number', 'tail') THEN
        RAISE EXCEPTION 'unknown search kind %', p_kind USING ERRCODE = '22023';
    END IF;
    IF acting NOT IN {full} THEN
        -- One search of a user at a time, so two at once cannot both take the last one.
        PERFORM pg_advisory_xact_lock(hashtext('crm personal search ' || who));
        SELECT value INTO setting FROM settings WHERE key = 'privacy.search_limit_per_hour';
        IF setting ~ '^\\s*[0-9]{{1,9}}\\s*$' AND setting::integer >= 1 THEN
            lim := setting::integer;
        END IF;
        SELECT count(*) INTO done FROM audit_log
        WHERE action = 'search_personal' AND actor = who AND at >= now() - interval '1 hour';
        IF done >= lim THEN
            INSERT INTO audit_log (at, actor, role, action, entity, detail)
            VALUES (now(), who, acting, 'search_limit', 'members',
                    COALESCE(p_label, who) || '一小时内按个人信息查找已达上限 ' || lim
                    || ' 次；被拒绝的查找：' || p_detail);
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO audit_log (at, actor, role, action, entity, detail)
    VALUES (now(), who, acting, 'search_personal', 'members', p_detail);
    SELECT COALESCE(array_agg(m.id ORDER BY m.id), '{{}}') INTO found FROM members m
    WHERE CASE p_kind WHEN 'phone' THEN m.phone_hash = p_value OR m.alt_phone_hash = p_value
                      WHEN 'id_number' THEN m.id_number_hash = p_value
                      ELSE m.phone_tail = p_value END;
    RETURN found;
END $$;

CREATE OR REPLACE FUNCTION crm_update_member_seals(p_rows jsonb)
RETURNS TABLE (member_id integer, changed text[])
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
BEGIN
    IF NOT crm_is_owner() AND crm_role_of(session_user) IS NULL THEN
        RAISE EXCEPTION '没有 CRM 角色的登录不能修改客户' USING ERRCODE = '42501';
    END IF;
    RETURN QUERY
    WITH given AS (
        SELECT * FROM jsonb_to_recordset(p_rows) AS g(
            id integer, phone_enc text, phone_hash text, phone_tail text, phone_masked text,
            alt_phone_enc text, alt_phone_hash text, alt_phone_masked text,
            id_number_enc text, id_number_hash text, id_number_masked text)
    ), differs AS (
        SELECT g.*,
               g.phone_hash IS NOT NULL AND g.phone_hash IS DISTINCT FROM m.phone_hash AS new_phone,
               g.alt_phone_hash IS NOT NULL
                   AND g.alt_phone_hash IS DISTINCT FROM m.alt_phone_hash AS new_alt,
               g.id_number_hash IS NOT NULL
                   AND g.id_number_hash IS DISTINCT FROM m.id_number_hash AS new_id
        FROM given g JOIN members m ON m.id = g.id
    ), written AS (
        UPDATE members m SET
            phone_enc = CASE WHEN d.new_phone THEN d.phone_enc ELSE m.phone_enc END,
            phone_hash = CASE WHEN d.new_phone THEN d.phone_hash ELSE m.phone_hash END,
            phone_tail = CASE WHEN d.new_phone THEN d.phone_tail ELSE m.phone_tail END,
            phone_masked = CASE WHEN d.new_phone THEN d.phone_masked ELSE m.phone_masked END,
            alt_phone_enc = CASE WHEN d.new_alt THEN d.alt_phone_enc ELSE m.alt_phone_enc END,
            alt_phone_hash = CASE WHEN d.new_alt THEN d.alt_phone_hash ELSE m.alt_phone_hash END,
            alt_phone_masked = CASE WHEN d.new_alt THEN d.alt_phone_masked
                                    ELSE m.alt_phone_masked END,
            id_number_enc = CASE WHEN d.new_id THEN d.id_number_enc ELSE m.id_number_enc END,
            id_number_hash = CASE WHEN d.new_id THEN d.id_number_hash ELSE m.id_number_hash END,
            id_number_masked = CASE WHEN d.new_id THEN d.id_number_masked
                                    ELSE m.id_number_masked END
        FROM differs d
        WHERE m.id = d.id AND (d.new_phone OR d.new_alt OR d.new_id)
        RETURNING m.id, d.new_phone, d.new_alt, d.new_id
    )
    SELECT w.id, array_remove(ARRAY[CASE WHEN w.new_phone THEN 'phone' END,
                                    CASE WHEN w.new_alt THEN 'alt_phone' END,
                                    CASE WHEN w.new_id THEN 'id_number' END], NULL)
    FROM written w;
END $$;
"""

SIGNATURES = (
    "crm_reveal_members(bigint[], text, text, text)",
    "crm_find_members(text, text, text, text, text, text)",
    "crm_update_member_seals(jsonb)",
)


def upgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alt_phone_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("phone_masked", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("alt_phone_masked", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("id_number_masked", sa.String(length=30), nullable=True))
        batch_op.create_index(batch_op.f("ix_members_alt_phone_hash"), ["alt_phone_hash"])
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = bind.exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    columns = [c["name"] for c in sa.inspect(bind).get_columns("members")]
    visible = ", ".join(c for c in columns if c not in SEALED)
    for statement in (
        "REVOKE SELECT ON members FROM crm_staff",
        f"GRANT SELECT ({visible}) ON members TO crm_staff",
        # Settings hold the rules the database applies (the search limit) and the managers'
        # decisions (rates, schedules, warranty periods): theirs to change, not everyone's.
        "REVOKE INSERT, UPDATE, DELETE ON settings FROM crm_staff",
        "GRANT INSERT, UPDATE, DELETE ON settings TO crm_manager, crm_admin",
    ):
        op.execute(statement)
    op.execute(FUNCTIONS.format(schema=schema, full=FULL_ROLES))
    for signature in SIGNATURES:
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO crm_staff")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for signature in SIGNATURES:
            op.execute(f"DROP FUNCTION IF EXISTS {signature}")
        op.execute("GRANT SELECT ON members TO crm_staff")
        op.execute("REVOKE INSERT, UPDATE, DELETE ON settings FROM crm_manager, crm_admin")
        op.execute("GRANT INSERT, UPDATE, DELETE ON settings TO crm_staff")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_members_alt_phone_hash"))
        batch_op.drop_column("id_number_masked")
        batch_op.drop_column("alt_phone_masked")
        batch_op.drop_column("phone_masked")
        batch_op.drop_column("alt_phone_hash")
