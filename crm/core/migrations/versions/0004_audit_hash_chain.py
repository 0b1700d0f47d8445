"""audit log hash chain

Each audit_log row gets prev_hash and hash (crm.core.audit.chain_text); the rows already there
are chained once, in id order. From then on the database chains every insert, whatever inserts:

- PostgreSQL: the BEFORE INSERT trigger audit_log_zz_chain. Its name sorts after any other
  BEFORE INSERT trigger on audit_log (they fire in name order), so it hashes the row as stored,
  after a trigger that sets actor and role. It takes a transaction advisory lock, so appends are
  serialised until commit, and draws the row a new id when the one drawn before the wait is not
  above the last row's: ids follow the chain order even when transactions commit out of order.
  This relies on read committed (crm's isolation level), where the trigger's query sees the
  previous holder's commit. SECURITY DEFINER, so a role that may insert but not read audit_log
  still chains. The price of one chain: a transaction that has written an entry holds the lock
  until it ends, so one that then waits for a row another transaction locked before writing its
  own entry is a lock cycle, which PostgreSQL breaks by cancelling one (deadlock_detected).
- SQLite: an AFTER INSERT trigger of the same name sets both columns through crm_audit_hash(),
  a Python function each connection of crm's engine registers (crm.core.audit). A tool that
  does not register it cannot insert into audit_log, which is what we want. SQLite writes are
  serialised already. A later batch migration that rebuilds audit_log must create it again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:00:00
"""

import sqlalchemy as sa
from alembic import op

from crm.core.audit import CHAIN_TAG, chain_hash

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Key space of the two-integer advisory locks (tickets use the one-bigint space); the second
# key is the table's oid, so each schema's audit_log has a lock of its own.
CHAIN_LOCK = 0x5E7C_A0D1

PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION audit_log_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    last_id integer;
    parts text[];
    part text;
    payload text := '{CHAIN_TAG}';
BEGIN
    PERFORM pg_advisory_xact_lock({CHAIN_LOCK}, TG_RELID::integer);
    -- A new snapshot (read committed): the last row is the last holder's, committed.
    EXECUTE format('SELECT id, hash FROM %I.%I ORDER BY id DESC LIMIT 1',
                   TG_TABLE_SCHEMA, TG_TABLE_NAME) INTO last_id, NEW.prev_hash;
    -- An id drawn before the wait may be below a row appended meanwhile: draw again.
    IF NEW.id IS NULL OR NEW.id <= last_id THEN
        NEW.id := nextval(pg_get_serial_sequence(
            format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME), 'id'));
    END IF;
    parts := ARRAY[NEW.prev_hash, ((extract(epoch FROM NEW.at) * 1000000)::bigint)::text,
                   NEW.actor, NEW.role, NEW.action, NEW.entity, NEW.entity_id,
                   NEW.changes::text, NEW.detail];
    FOREACH part IN ARRAY parts LOOP
        payload := payload || CASE WHEN part IS NULL THEN '-'
                                   ELSE length(part)::text || ':' || part END;
    END LOOP;
    NEW.hash := encode(sha256(convert_to(payload, 'UTF8')), 'hex');
    RETURN NEW;
END
$$
"""

PG_TRIGGER = """
CREATE TRIGGER audit_log_zz_chain BEFORE INSERT ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_chain()
"""

SQLITE_PREVIOUS = "(SELECT hash FROM audit_log WHERE id < NEW.id ORDER BY id DESC LIMIT 1)"
SQLITE_TRIGGER = f"""
CREATE TRIGGER audit_log_zz_chain AFTER INSERT ON audit_log
BEGIN
    UPDATE audit_log SET
        prev_hash = {SQLITE_PREVIOUS},
        hash = crm_audit_hash({SQLITE_PREVIOUS}, at, actor, role, action, entity, entity_id,
                              changes, detail)
    WHERE id = NEW.id;
END
"""

BATCH = 2000


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _chain_existing_rows()
    if op.get_bind().dialect.name == "postgresql":
        # sha256() is built into PostgreSQL (11+): no extension needed for the chain.
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def _chain_existing_rows() -> None:
    """Chain the rows written before this revision, in id order, in batches."""
    bind = op.get_bind()
    log = sa.table(
        "audit_log",
        sa.column("id", sa.Integer),
        sa.column("at", sa.DateTime(timezone=True)),
        *(sa.column(name, sa.Text) for name in ("actor", "role", "action", "entity")),
        sa.column("entity_id", sa.Text),
        sa.column("changes", sa.JSON),
        sa.column("detail", sa.Text),
        sa.column("prev_hash", sa.Text),
        sa.column("hash", sa.Text),
    )
    fields = (
        log.c.at,
        log.c.actor,
        log.c.role,
        log.c.action,
        log.c.entity,
        log.c.entity_id,
        # The JSON exactly as stored: PostgreSQL's json keeps the text it was given.
        sa.cast(log.c.changes, sa.Text),
        log.c.detail,
    )
    update = (
        sa.update(log)
        .where(log.c.id == sa.bindparam("row_id"))
        .values(prev_hash=sa.bindparam("prev"), hash=sa.bindparam("new"))
    )
    previous, last_id = None, 0
    while True:
        rows = bind.execute(
            sa.select(log.c.id, *fields).where(log.c.id > last_id).order_by(log.c.id).limit(BATCH)
        ).all()
        if not rows:
            return
        chained = []
        for row_id, *values in rows:
            new = chain_hash(previous, *values)
            chained.append({"row_id": row_id, "prev": previous, "new": new})
            previous, last_id = new, row_id
        bind.execute(update, chained)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_log_zz_chain" + _on_table())
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_log_chain()")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")


def _on_table() -> str:
    return " ON audit_log" if op.get_bind().dialect.name == "postgresql" else ""
