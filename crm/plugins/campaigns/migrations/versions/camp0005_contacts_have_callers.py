"""outreach contacts have callers, who see the numbers they must dial

`camp_contacts.caller` names the person who calls the household (`crm campaign assign`, a
manager's decision). A caller who sees personal data masked sees the full phone of their own
contacts, and only theirs; each such view is audited like any other.

On PostgreSQL the database checks it: `camp_reveal_assigned(run, purpose)` (SECURITY DEFINER)
returns the phone ciphertext of the first owner of each contact of that run whose caller is
the login (`session_user`; the owner acting as someone names them), and writes the
`view_personal` entry before it returns anything. Only managers and administrators may set
`caller` (column privileges), so nobody assigns a list to themselves.

Revision ID: camp0005
Revises: camp0004
Create Date: 2026-12-03 14:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "camp0005"
down_revision = "camp0004"
branch_labels = None
depends_on = None

REVEAL = """
CREATE OR REPLACE FUNCTION camp_reveal_assigned(
    p_run integer, p_purpose text, p_actor text DEFAULT NULL, p_role text DEFAULT NULL)
RETURNS TABLE (member_id integer, phone_token varchar, alt_phone_token varchar,
               id_number_token varchar)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
DECLARE
    owner boolean := crm_is_owner();
    who text := CASE WHEN owner THEN COALESCE(p_actor, session_user) ELSE session_user END;
    found integer[];
BEGIN
    IF NOT owner AND crm_role_of(session_user) IS NULL THEN
        RAISE EXCEPTION '没有 CRM 角色的登录不能查看外呼名单' USING ERRCODE = '42501';
    END IF;
    SELECT array_agg(DISTINCT m.id ORDER BY m.id) INTO found
    FROM camp_contacts c
    JOIN members m ON m.id = (SELECT min(o.id) FROM members o
                              WHERE o.household_id = c.household_id AND o.role = 'owner')
    WHERE c.run_id = p_run AND c.caller = who AND m.phone_enc IS NOT NULL;
    IF found IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO audit_log (at, actor, role, action, entity, entity_id, detail)
    VALUES (now(), who, COALESCE(p_role, 'admin'), 'view_personal', 'members',
            CASE WHEN cardinality(found) = 1 THEN found[1]::text END,
            left(p_purpose, 200) || '（本人负责的联系人，仅电话）；完整显示 '
            || cardinality(found) || ' 人：' || array_to_string(found[1:200], ',')
            || CASE WHEN cardinality(found) > 200 THEN '…' ELSE '' END);
    RETURN QUERY SELECT m.id, m.phone_enc, NULL::varchar, NULL::varchar
                 FROM members m WHERE m.id = ANY (found) ORDER BY m.id;
END $$;
"""
SIGNATURE = "camp_reveal_assigned(integer, text, text, text)"


def upgrade() -> None:
    with op.batch_alter_table("camp_contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("caller", sa.String(length=100), nullable=True))
        batch_op.create_index(batch_op.f("ix_camp_contacts_caller"), ["caller"], unique=False)
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = bind.exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    columns = [c["name"] for c in sa.inspect(bind).get_columns("camp_contacts")]
    others = ", ".join(c for c in columns if c != "caller")
    for statement in (
        "REVOKE INSERT, UPDATE ON camp_contacts FROM crm_staff",
        f"GRANT INSERT ({others}), UPDATE ({others}) ON camp_contacts TO crm_staff",
        "GRANT INSERT, UPDATE ON camp_contacts TO crm_manager, crm_admin",
    ):
        op.execute(statement)
    op.execute(REVEAL.format(schema=schema))
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO crm_staff")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
        op.execute("REVOKE INSERT, UPDATE ON camp_contacts FROM crm_manager, crm_admin")
        op.execute("GRANT INSERT, UPDATE ON camp_contacts TO crm_staff")
    with op.batch_alter_table("camp_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_camp_contacts_caller"))
        batch_op.drop_column("caller")
