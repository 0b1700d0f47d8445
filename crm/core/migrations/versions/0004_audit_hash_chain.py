"""audit log hash chain

Each audit_log row gets chain_seq (its place in the chain), prev_hash (the hash of the row
before it in the chain) and hash, the SHA-256 of crm.core.audit.chain_text over its own fields
and prev_hash. The rows already there are chained once, in id order. From then on the database
chains every insert, whoever inserts:

- PostgreSQL chains at commit, so the chain's lock is held only while a transaction commits.
  The BEFORE INSERT trigger audit_log_zz_chain clears the three columns (an inserter cannot
  choose its place or its hash); the constraint trigger audit_log_zz_seal, DEFERRABLE
  INITIALLY DEFERRED, runs for each new row when its transaction commits. It takes a
  transaction advisory lock (held to the end of the commit, a moment later), reads the last
  sealed row, and gives the row the next chain_seq, prev_hash and hash. Chain order is
  therefore commit order, not id order: ids are drawn at insert and stay as drawn, and verify
  walks by chain_seq. A transaction's own rows are sealed in the order it inserted them.
  Until its commit a transaction holds no chain lock, so a long import does not hold up
  other writers, and no lock cycle goes through the chain (taking the lock at the first
  insert serialised every writer until commit and could deadlock with row locks). The lock
  is held for as long as sealing the committing transaction's rows takes (20,000 rows: about
  1.5 s on a 2-core test machine). SET CONSTRAINTS ... IMMEDIATE would seal at the end of
  each statement and so hold the lock until commit again; crm never does that.
  The seal reads the last row with a new snapshot (read committed, crm's isolation level);
  under repeatable read it could not see the previous holder's commit and the unique
  chain_seq would refuse the commit instead of forking the chain. The seal fills only a row
  whose hash and chain_seq are still empty, and only on INSERT: an edited row whose hash was
  cleared is never hashed again. SECURITY DEFINER with a fixed search_path, so a role that
  may insert but not update or read audit_log still gets its rows sealed. Another BEFORE
  INSERT trigger (one that sets actor and role) may run in any order with audit_log_zz_chain:
  the seal hashes the row as inserted, after every BEFORE INSERT trigger (a row changed
  before its commit then fails verify as edited).
- SQLite chains at insert (writers are serialised already): an AFTER INSERT trigger of the
  same name sets the three columns through crm_audit_hash(), a Python function each
  connection of crm's engine registers (crm.core.audit). A tool that does not register it
  cannot insert into audit_log, which is what we want. There chain order is id order. A later
  batch migration that rebuilds audit_log must create the trigger again.

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

PG_CLEAR = """
CREATE OR REPLACE FUNCTION audit_log_unsealed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    NEW.chain_seq := NULL;
    NEW.prev_hash := NULL;
    NEW.hash := NULL;
    RETURN NEW;
END
$$
"""

PG_SEAL = f"""
CREATE OR REPLACE FUNCTION audit_log_seal() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    last_seq bigint;
    prev text;
    parts text[];
    part text;
    payload text := '{CHAIN_TAG}';
BEGIN
    -- This runs at commit: the lock is held from here to the end of the commit.
    PERFORM pg_advisory_xact_lock({CHAIN_LOCK}, TG_RELID::integer);
    -- A new snapshot (read committed): the previous holder of the lock has committed.
    EXECUTE format('SELECT chain_seq, hash FROM %I.%I WHERE chain_seq IS NOT NULL'
                   ' ORDER BY chain_seq DESC LIMIT 1',
                   TG_TABLE_SCHEMA, TG_TABLE_NAME) INTO last_seq, prev;
    -- NEW is the row as inserted, after every BEFORE INSERT trigger.
    parts := ARRAY[prev, ((extract(epoch FROM NEW.at) * 1000000)::bigint)::text,
                   NEW.actor, NEW.role, NEW.action, NEW.entity, NEW.entity_id,
                   NEW.changes::text, NEW.detail];
    FOREACH part IN ARRAY parts LOOP
        payload := payload || CASE WHEN part IS NULL THEN '-'
                                   ELSE length(part)::text || ':' || part END;
    END LOOP;
    -- Only a row still waiting for its seal: one deleted since is gone, and one whose chain
    -- columns were cleared after an edit is not this insert's to seal.
    EXECUTE format('UPDATE %I.%I SET chain_seq = $1, prev_hash = $2, hash = $3'
                   ' WHERE id = $4 AND hash IS NULL AND chain_seq IS NULL',
                   TG_TABLE_SCHEMA, TG_TABLE_NAME)
        USING coalesce(last_seq, 0) + 1, prev,
              encode(sha256(convert_to(payload, 'UTF8')), 'hex'), NEW.id;
    RETURN NULL;
END
$$
"""

PG_TRIGGERS = (
    """
    CREATE TRIGGER audit_log_zz_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_unsealed()
    """,
    """
    CREATE CONSTRAINT TRIGGER audit_log_zz_seal AFTER INSERT ON audit_log
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION audit_log_seal()
    """,
)

# The last row of the chain, other than the one being chained (whatever it was inserted with).
SQLITE_LAST = (
    "(SELECT {column} FROM audit_log WHERE chain_seq IS NOT NULL AND id <> NEW.id"
    " ORDER BY chain_seq DESC LIMIT 1)"
)
SQLITE_PREVIOUS = SQLITE_LAST.format(column="hash")
SQLITE_TRIGGER = f"""
CREATE TRIGGER audit_log_zz_chain AFTER INSERT ON audit_log
BEGIN
    UPDATE audit_log SET
        chain_seq = coalesce({SQLITE_LAST.format(column="chain_seq")}, 0) + 1,
        prev_hash = {SQLITE_PREVIOUS},
        hash = crm_audit_hash({SQLITE_PREVIOUS}, at, actor, role, action, entity, entity_id,
                              changes, detail)
    WHERE id = NEW.id;
END
"""

BATCH = 2000


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain_seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_audit_log_chain_seq"), ["chain_seq"])
    _chain_existing_rows()
    if op.get_bind().dialect.name == "postgresql":
        # sha256() is built into PostgreSQL (11+): no extension needed for the chain.
        op.execute(PG_CLEAR)
        op.execute(PG_SEAL)
        for trigger in PG_TRIGGERS:
            op.execute(trigger)
    else:
        op.execute(SQLITE_TRIGGER)


def _chain_existing_rows() -> None:
    """Chain the rows written before this revision, in id order (their chain_seq), in batches."""
    bind = op.get_bind()
    log = sa.table(
        "audit_log",
        sa.column("id", sa.Integer),
        sa.column("at", sa.DateTime(timezone=True)),
        *(sa.column(name, sa.Text) for name in ("actor", "role", "action", "entity")),
        sa.column("entity_id", sa.Text),
        sa.column("changes", sa.JSON),
        sa.column("detail", sa.Text),
        sa.column("chain_seq", sa.BigInteger),
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
        .values(
            chain_seq=sa.bindparam("seq"), prev_hash=sa.bindparam("prev"), hash=sa.bindparam("new")
        )
    )
    previous, last_id, seq = None, 0, 0
    while True:
        rows = bind.execute(
            sa.select(log.c.id, *fields).where(log.c.id > last_id).order_by(log.c.id).limit(BATCH)
        ).all()
        if not rows:
            return
        chained = []
        for row_id, *values in rows:
            new, seq = chain_hash(previous, *values), seq + 1
            chained.append({"row_id": row_id, "seq": seq, "prev": previous, "new": new})
            previous, last_id = new, row_id
        bind.execute(update, chained)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_zz_seal ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_zz_chain ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_seal()")
        op.execute("DROP FUNCTION IF EXISTS audit_log_unsealed()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_zz_chain")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_log_chain_seq"), type_="unique")
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("chain_seq")
