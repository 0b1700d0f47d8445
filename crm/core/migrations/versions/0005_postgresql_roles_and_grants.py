"""PostgreSQL: CRM roles as group roles, their grants, an append-only audit log whose actor is
the database login

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 08:10:00

On PostgreSQL the database, not a flag, decides who someone is and what they may change:

- `crm_staff` holds what every CRM user may do on the tables; `crm_sales`, `crm_agent`,
  `crm_manager`, `crm_analyst` and `crm_admin` are the CRM roles, each a member of
  `crm_staff`. Staff log in as their own PostgreSQL roles, members of one CRM role
  (`crm staff add --login`, `crm staff role`). Roles are cluster-wide, so they are created
  once and shared by every database and schema of the cluster; the grants are per schema.
- Nobody but the owner of the schema (the login that runs `crm init`) may update, delete or
  truncate audit rows.
- An audit row inserted by any other login carries that login (`session_user`) and its CRM
  role, whatever the client wrote: a user cannot write entries in someone else's name.

On SQLite (the single-user embedded default) this migration does nothing.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CRM_ROLES = ("crm_sales", "crm_agent", "crm_manager", "crm_analyst", "crm_admin")
# The highest role first: a login that is (wrongly) in two CRM roles acts as the higher one.
ROLE_ORDER = ("admin", "manager", "analyst", "agent", "sales")
DEFAULTS = "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} "

# The tables in the schema on which crm_staff holds no privilege yet, on the whole table or on
# any column: on a database made before this revision, every table (the plugins' too); run
# again after a downgrade of the core chain, only the core's, which the downgrade revoked. A
# plugin's table keeps the narrower grants its own migrations made (camp0005: only a manager
# may set a contact's caller), which a grant on ALL TABLES would widen again.
UNGRANTED_TABLES = """
SELECT quote_ident(c.relname) FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
  AND NOT EXISTS (
      SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = 'crm_staff'::regrole)
  AND NOT EXISTS (
      SELECT 1 FROM pg_attribute att, aclexplode(att.attacl) a
      WHERE att.attrelid = c.oid AND NOT att.attisdropped
        AND a.grantee = 'crm_staff'::regrole)
ORDER BY c.relname
"""
# The core's own tables at this revision, which its downgrade revokes (the plugins' keep theirs).
CORE_TABLES = (
    "alembic_version", "audit_log", "buildings", "households", "members", "projects",
    "purchases", "referrals", "scheduler_jobs", "service_records", "settings", "units",
)  # fmt: skip

FUNCTIONS = """
-- The login that owns this schema (or a superuser): the maintenance login that runs
-- `crm init` and the migrations. Only it may rewrite the audit log.
CREATE OR REPLACE FUNCTION crm_is_owner() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = session_user)
        OR pg_has_role(session_user, n.nspowner, 'MEMBER')
    FROM pg_namespace n WHERE n.nspname = current_schema()
$$;

-- The CRM role of a login: the highest of the CRM group roles it is a member of.
CREATE OR REPLACE FUNCTION crm_role_of(login name) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT r FROM unnest(ARRAY[{order}]) WITH ORDINALITY AS t(r, i)
    WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crm_' || r)
      AND pg_has_role(login, 'crm_' || r, 'MEMBER')
    ORDER BY i LIMIT 1
$$;

-- The actor of an audit row is the login that wrote it, not what the client says; only the
-- owner's maintenance login may act for a named user (it can rewrite the log anyway).
CREATE OR REPLACE FUNCTION audit_log_actor() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT crm_is_owner() THEN
        NEW.actor := session_user;
        NEW.role := COALESCE(crm_role_of(session_user), 'none');
    END IF;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS audit_log_actor ON audit_log;
CREATE TRIGGER audit_log_actor BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_actor();
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Roles are shared by the whole cluster: two databases (or two test runs) initialising at
    # once must not both create them.
    op.execute("SELECT pg_advisory_xact_lock(hashtext('crm roles'))")
    for role in ("crm_staff", *CRM_ROLES):
        op.execute(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') "
            f"THEN CREATE ROLE {role} NOLOGIN; END IF; END $$"
        )
    for role in CRM_ROLES:
        op.execute(
            "DO $$ BEGIN IF NOT pg_has_role('{r}', 'crm_staff', 'MEMBER') "
            "THEN GRANT crm_staff TO {r}; END IF; END $$".replace("{r}", role)
        )
    schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    ungranted = ", ".join(op.get_bind().exec_driver_sql(UNGRANTED_TABLES).scalars())
    grants = [
        "GRANT USAGE ON SCHEMA {s} TO crm_staff",
        *(
            [f"GRANT SELECT, INSERT, UPDATE, DELETE ON {ungranted} TO crm_staff"]
            if ungranted
            else []
        ),
        "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO crm_staff",
        # Tables the plugins' migrations create later in the same schema get the same grants.
        DEFAULTS + "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO crm_staff",
        DEFAULTS + "GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO crm_staff",
        # The audit log is append-only for everyone but the owner.
        "REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM crm_staff",
    ]
    for grant in grants:
        op.execute(grant.format(s=schema))
    # Functions are created without the PUBLIC execute default being a risk: they only read
    # catalogue facts about the caller.
    order = ", ".join(f"'{role}'" for role in ROLE_ORDER)
    op.execute(FUNCTIONS.replace("{order}", order))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    op.execute("DROP TRIGGER IF EXISTS audit_log_actor ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_actor()")
    op.execute("DROP FUNCTION IF EXISTS crm_role_of(name)")
    op.execute("DROP FUNCTION IF EXISTS crm_is_owner()")
    for statement in (
        DEFAULTS + "REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM crm_staff",
        DEFAULTS + "REVOKE USAGE, SELECT, UPDATE ON SEQUENCES FROM crm_staff",
        "REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM crm_staff",
        f"REVOKE ALL ON {', '.join(CORE_TABLES)} FROM crm_staff",
        "REVOKE USAGE ON SCHEMA {s} FROM crm_staff",
    ):
        op.execute(statement.format(s=schema))
    # The roles stay: other databases of the cluster may still use them.
