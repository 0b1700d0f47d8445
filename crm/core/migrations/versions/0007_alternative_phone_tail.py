"""A search by phone tail (尾号) finds the alternative phone too

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 09:00:00

A search by the full number already finds a member's alternative phone (`alt_phone_hash`);
one by its last four digits found only the main phone. `members.alt_phone_tail` holds the
last four digits of the alternative phone, as `phone_tail` does of the main one (both are
shown in the masked forms anyway, so every CRM role may read them). A migration has no key:
`crm init` and `crm db upgrade` fill it for members written before (crm.core.privacy
.fill_masks).

On PostgreSQL `crm_find_members` (migration 0006), through which every login but the owner
searches by personal data, matches a tail against both columns; its audit entry and hourly
limit are unchanged.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FULL_ROLES = "('manager', 'admin')"
SIGNATURE = "crm_find_members(text, text, text, text, text, text)"

# crm_find_members of migration 0006 with the tail condition as a placeholder.
FIND_MEMBERS = """
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
                      ELSE {tail} END;
    RETURN found;
END $$;
"""
BOTH_TAILS = "m.phone_tail = p_value OR m.alt_phone_tail = p_value"
MAIN_TAIL = "m.phone_tail = p_value"


def _find_members(tail: str) -> None:
    schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    op.execute(FIND_MEMBERS.format(schema=schema, full=FULL_ROLES, tail=tail))
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO crm_staff")


def upgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alt_phone_tail", sa.String(length=4), nullable=True))
        batch_op.create_index(batch_op.f("ix_members_alt_phone_tail"), ["alt_phone_tail"])
    if op.get_bind().dialect.name != "postgresql":
        return
    # Migration 0006 grants SELECT column by column: a new column needs its own grant.
    op.execute("GRANT SELECT (alt_phone_tail) ON members TO crm_staff")
    _find_members(BOTH_TAILS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _find_members(MAIN_TAIL)
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_members_alt_phone_tail"))
        batch_op.drop_column("alt_phone_tail")
