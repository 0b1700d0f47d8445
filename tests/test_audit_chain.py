"""The audit log's hash chain: every insert path is chained by the database, `crm audit verify`
finds the first edited, missing, re-ordered or unchained row, the migration chains old rows,
and concurrent appends keep one chain. On PostgreSQL rows are chained when their transaction
commits: an open transaction holds no chain lock, so it neither blocks others nor deadlocks."""

from __future__ import annotations

import queue
import threading
import time
import uuid

import pytest
from sqlalchemy import create_engine, select, text

from crm.core import audit
from crm.core.auditlog import EDITED, MISSING, REORDERED, UNCHAINED, verify_chain
from crm.core.db import transaction
from crm.core.models import AuditEntry, Household, Setting
from crm.core.security import User

MANAGER = "王经理:manager"
HOUSEHOLDS = "户号,姓名,客户状态,项目,年龄\nH001,张伟,准客户,万科城,35\nH002,李娜,业主,万科城,28\n"


def _record(app, count: int, start: int = 1) -> None:
    with app.session() as session, transaction(session):
        for n in range(start, start + count):
            audit.record(
                session, "note", "households", f"e{n}", changes={"n": n}, detail=f"第{n}条"
            )


def _ids(app) -> list[int]:
    """The ids of the chained entries, in chain order."""
    query = select(AuditEntry.id).where(AuditEntry.chain_seq.is_not(None))
    with app.session() as session:
        return list(session.scalars(query.order_by(AuditEntry.chain_seq)))


def _chain(app) -> list[tuple[int, int, str | None]]:
    """(chain_seq, id, detail) of every entry, in chain order."""
    query = select(AuditEntry.chain_seq, AuditEntry.id, AuditEntry.detail)
    with app.session() as session:
        return [tuple(row) for row in session.execute(query.order_by(AuditEntry.chain_seq))]


def _check(app):
    with app.session() as session:
        return verify_chain(session, batch=3)  # small batches: links across batches count


def _tamper(db_url: str, sql: str, **params) -> None:
    """Raw SQL as the database owner, past crm."""
    engine = create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text(sql), params)
    engine.dispose()


def test_every_insert_path_is_chained_and_verifies(app, run, tmp_path, fixed_now_text):
    assert run("demo", "--households", "20", "--now", fixed_now_text).exit_code == 0
    _record(app, 2)  # audit.record
    with app.session() as session, transaction(session):  # the ORM flush hook
        session.add(Household(code="H9", name="赵敏", status="prospective"))
    source = tmp_path / "h.csv"
    source.write_text(HOUSEHOLDS, encoding="utf-8")
    assert run("import", "households", str(source)).exit_code == 0
    source.write_text(HOUSEHOLDS.replace("35", "36"), encoding="utf-8")
    assert run("import", "households", str(source)).exit_code == 0  # the import's own inserts
    with app.session() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.chain_seq)).all()
    actions = {entry.action for entry in entries}
    assert {"demo", "note", "create", "import", "update"} <= actions
    assert all(entry.hash and len(entry.hash) == 64 for entry in entries)
    assert [entry.chain_seq for entry in entries] == list(range(1, len(entries) + 1))
    assert entries[0].prev_hash is None
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    check = _check(app)
    assert check.broken is None and check.checked == len(entries)
    assert check.last_hash == entries[-1].hash
    result = run("audit", "verify", as_=MANAGER)
    assert result.exit_code == 0, result.output
    assert f"{len(entries)} 条记录的哈希链全部吻合" in result.stdout
    assert entries[-1].hash in result.stdout


def test_verify_finds_an_edited_row(app, run, db_url):
    _record(app, 6)
    ids = _ids(app)
    _tamper(db_url, "UPDATE audit_log SET detail = '改过' WHERE id = :id", id=ids[3])
    check = _check(app)
    assert check.broken.id == ids[3] and check.broken.problem == EDITED
    assert check.checked == 4
    result = run("audit", "verify", as_=MANAGER)
    assert result.exit_code == 1
    assert f"第 {ids[3]} 条记录" in result.stdout and "被改过" in result.stdout
    assert "前 3 条记录完好" in result.stdout


def test_verify_finds_an_edited_time_and_json(app, db_url):
    _record(app, 4)
    ids = _ids(app)  # ids[-2] is the third recorded here: {"n": 3}
    edit = "UPDATE audit_log SET changes = :changes WHERE id = :id"
    _tamper(db_url, edit, changes='{"n": 9}', id=ids[-2])
    assert _check(app).broken.id == ids[-2]
    _tamper(db_url, edit, changes='{"n":3}', id=ids[-2])
    assert _check(app).broken.id == ids[-2]  # the same JSON, written differently, is a change
    _tamper(db_url, edit, changes='{"n": 3}', id=ids[-2])
    assert _check(app).broken is None  # back to the stored text: whole again
    with app.session() as session:
        at = session.get(AuditEntry, ids[1]).at
    later = at.replace(microsecond=(at.microsecond + 1) % 1_000_000)
    with app.engine.begin() as connection:
        connection.execute(
            AuditEntry.__table__.update().where(AuditEntry.id == ids[1]).values(at=later)
        )
    check = _check(app)
    assert check.broken.id == ids[1] and check.broken.problem == EDITED


def test_verify_finds_a_deleted_row(app, run, db_url):
    _record(app, 6)
    ids = _ids(app)
    _tamper(db_url, "DELETE FROM audit_log WHERE id = :id", id=ids[2])
    check = _check(app)
    assert check.broken.id == ids[3] and check.broken.problem == MISSING
    assert check.broken.previous_id == ids[1]
    result = run("audit", "verify", as_=MANAGER)
    assert result.exit_code == 1
    assert f"第 {ids[3]} 条记录" in result.stdout and "已不存在" in result.stdout


def test_verify_finds_the_first_rows_deleted(app, db_url):
    _record(app, 4)
    ids = _ids(app)
    _tamper(db_url, "DELETE FROM audit_log WHERE id IN (:a, :b)", a=ids[0], b=ids[1])
    check = _check(app)
    assert check.broken.id == ids[2] and check.broken.problem == MISSING
    assert check.broken.previous_id is None


def test_verify_finds_reordered_rows(app, run, db_url):
    _record(app, 6)
    ids = _ids(app)
    second, third = ids[2], ids[3]
    swap = "UPDATE audit_log SET chain_seq = :new WHERE chain_seq = :old"
    _tamper(db_url, swap, old=3, new=-1)
    _tamper(db_url, swap, old=4, new=3)
    _tamper(db_url, swap, old=-1, new=4)
    check = _check(app)
    # The row now third in the chain was chained after the one now fourth.
    assert check.broken.id == third and check.broken.problem == REORDERED
    assert check.broken.previous_id == ids[1] and check.broken.linked_id == second
    result = run("audit", "verify", as_=MANAGER)
    assert result.exit_code == 1 and "顺序被调换" in result.stdout


def test_verify_finds_the_last_row_moved_out_of_the_chain(app, db_url):
    _record(app, 4)
    ids = _ids(app)
    # A place below the first is no way out of the walk: the row is met first, out of turn.
    _tamper(db_url, "UPDATE audit_log SET chain_seq = 0 WHERE id = :id", id=ids[-1])
    check = _check(app)
    assert check.broken.id == ids[-1] and check.broken.problem == REORDERED
    assert check.broken.previous_id is None and check.broken.linked_id == ids[-2]


def test_verify_finds_an_unchained_row(app, db_url):
    _record(app, 3)
    ids = _ids(app)
    _tamper(db_url, "UPDATE audit_log SET hash = NULL WHERE id = :id", id=ids[1])
    check = _check(app)
    assert check.broken.id == ids[1] and check.broken.problem == UNCHAINED


def test_an_edited_row_whose_hash_was_cleared_is_not_chained_again(app, run, db_url):
    """Only an INSERT seals, and only a row still waiting for its seal: clearing an edited
    row's chain columns and writing more entries leaves it out of the chain, where verify
    finds it, after a chain that is whole without it."""
    _record(app, 3)
    ids = _ids(app)
    clear = "UPDATE audit_log SET detail = '改过', prev_hash = NULL, hash = NULL, chain_seq = NULL"
    _tamper(db_url, clear + " WHERE id = :id", id=ids[-1])
    _record(app, 2, start=4)
    with app.session() as session:
        edited = session.get(AuditEntry, ids[-1])
    assert edited.hash is None and edited.chain_seq is None
    check = _check(app)
    assert check.broken.id == ids[-1] and check.broken.problem == UNCHAINED
    chained = _ids(app)
    assert check.checked == len(chained) + 1 and check.broken.previous_id == chained[-1]
    result = run("audit", "verify", as_=MANAGER)
    assert result.exit_code == 1 and "没有哈希" in result.stdout


def test_an_entry_changed_before_its_commit_fails_as_edited(app):
    """The chain covers an entry as it was inserted: on PostgreSQL it is hashed at commit,
    but from the row as inserted, so a change in the same transaction is still found."""
    _record(app, 2)
    with app.engine.begin() as connection:
        row_id = connection.execute(
            text(
                "INSERT INTO audit_log (at, actor, role, action, entity, detail)"
                " VALUES (:at, '甲', 'admin', 'note', 'households', '原文') RETURNING id"
            ),
            {"at": "2026-12-01 08:00:00"},
        ).scalar_one()
        connection.execute(
            text("UPDATE audit_log SET detail = '改过' WHERE id = :id"), {"id": row_id}
        )
    check = _check(app)
    assert check.broken.id == row_id and check.broken.problem == EDITED


def test_an_inserter_cannot_choose_its_place_or_hash(app):
    _record(app, 2)
    before = len(_ids(app))
    forged = "f" * 64
    with app.engine.begin() as connection:  # on SQLite, crm's engine has the hash function
        connection.execute(
            text(
                "INSERT INTO audit_log (at, actor, role, action, entity, chain_seq, prev_hash,"
                " hash) VALUES (:at, '甲', 'admin', 'note', 'households', :seq, :forged, :forged)"
            ),
            # A place already taken is refused on insert by SQLite's unique index.
            {"at": "2026-12-01 08:00:00", "seq": before + 100, "forged": forged},
        )
    with app.session() as session:
        last = session.scalars(select(AuditEntry).order_by(AuditEntry.chain_seq.desc())).first()
    assert last.actor == "甲" and last.chain_seq == before + 1
    assert forged not in (last.hash, last.prev_hash)
    assert _check(app).broken is None


def test_verify_needs_the_audit_permission(app, run):
    _record(app, 1)
    result = run("audit", "verify", as_="小李:sales")
    assert result.exit_code != 0 and "无权核对审计日志" in result.stderr


def test_an_empty_log_verifies(app, run, db_url):
    _tamper(db_url, "DELETE FROM audit_log")
    result = run("audit", "verify", as_=MANAGER)
    assert result.exit_code == 0 and "0 条记录" in result.stdout


def _migrate(app, revision: str, *, up: bool) -> None:
    from alembic import command
    from alembic.config import Config

    chain = next(chain for chain in app.migration_chains() if chain.name == "core")
    with app.engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(chain.location))
        config.attributes.update(version_table=chain.version_table, connection=connection)
        (command.upgrade if up else command.downgrade)(config, revision)


def test_the_migration_chains_the_rows_already_there(app, db_url):
    before = len(_ids(app))
    _migrate(app, "0003", up=False)
    try:
        rows = [
            {"actor": "张三", "action": "create", "changes": '{"name": [null, "张伟"]}'},
            {"actor": "李四\n伪造", "action": "update", "changes": None},
            {"actor": "王五", "action": "import", "changes": '{"rows":  3}'},
        ]
        insert = (
            "INSERT INTO audit_log (at, actor, role, action, entity, entity_id, changes, detail)"
            " VALUES (:at, :actor, 'admin', :action, 'households', '7', :changes, NULL)"
        )
        for n, row in enumerate(rows):
            _tamper(db_url, insert, at=f"2026-11-0{n + 1} 08:00:00.12345{n}", **row)
    finally:
        _migrate(app, "head", up=True)
    check = _check(app)
    assert check.broken is None and check.checked == before + 3
    with app.session() as session:
        rows = session.execute(select(AuditEntry.id, AuditEntry.chain_seq)).all()
    assert sorted(rows) == [(row_id, n) for n, row_id in enumerate(sorted(i for i, _ in rows), 1)]
    _record(app, 2)  # new rows continue the chain the migration started
    check = _check(app)
    assert check.broken is None and check.checked == before + 5


def _append_concurrently(app, threads: int, each: int) -> None:
    errors = []

    def work(worker: int) -> None:
        try:
            for n in range(each):
                with app.session() as session, transaction(session):
                    session.info["user"] = User(f"员工{worker}", "agent")
                    audit.record(session, "note", "households", f"{worker}-{n}")
                    audit.record(session, "note", "households", f"{worker}-{n}b")
        except Exception as exc:  # noqa: BLE001 (reported below: a thread's exception is otherwise lost)
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []


def test_concurrent_appends_keep_one_chain(app):
    before = len(_ids(app))
    _append_concurrently(app, threads=4, each=15)
    check = _check(app)
    assert check.broken is None and check.checked == before + 4 * 15 * 2
    assert [seq for seq, _id, _detail in _chain(app)] == list(range(1, check.checked + 1))


def _postgresql_only(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: a second one waits for the first to commit")


def _wait_for_a_lock(app, pid: int) -> None:
    """Return once the backend `pid` waits for a lock (the row another transaction holds)."""
    deadline = time.monotonic() + 10
    with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        while time.monotonic() < deadline:
            waits = connection.scalar(
                text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            )
            if waits == "Lock":
                return
            time.sleep(0.02)
    raise AssertionError("the first transaction never waited for the row")


def test_postgresql_a_row_lock_and_the_chain_make_no_lock_cycle(app, db_url):
    """T2 locks a row; T1 writes an entry, then wants that row; T2 writes an entry and
    commits; T1 gets the row and commits. With the chain lock taken at the first insert, T1
    held it while waiting for T2's row and T2 waited for it: deadlock_detected."""
    _postgresql_only(db_url)
    with app.session() as session, transaction(session):
        session.add(Setting(key="test.shared", value="0"))
    pids, errors = queue.Queue(), []

    def first() -> None:
        try:
            with app.session() as session, transaction(session):
                pids.put(session.scalar(text("SELECT pg_backend_pid()")))
                audit.record(session, "note", "settings", "test.shared", detail="T1")
                session.get(Setting, "test.shared", with_for_update=True).value = "1"
        except Exception as exc:  # noqa: BLE001 (reported below: a thread's exception is otherwise lost)
            errors.append(exc)

    with app.session() as second, transaction(second):
        second.execute(text("SET LOCAL lock_timeout = '10s'"))  # a regression fails, not hangs
        second.get(Setting, "test.shared", with_for_update=True).value = "2"
        worker = threading.Thread(target=first)
        worker.start()
        _wait_for_a_lock(app, pids.get(timeout=10))
        audit.record(second, "note", "settings", "test.shared", detail="T2")
    worker.join(timeout=30)
    assert not worker.is_alive() and errors == []
    with app.session() as session:
        assert session.get(Setting, "test.shared").value == "1"  # T1 wrote after T2 committed
    chain = [(seq, row_id) for seq, row_id, detail in _chain(app) if detail in ("T1", "T2")]
    (t2_seq, t2_id), (t1_seq, t1_id) = chain
    assert t1_id < t2_id and t2_seq < t1_seq  # ids as drawn, chained in commit order
    assert _check(app).broken is None


def test_postgresql_an_open_transaction_does_not_hold_up_another_commit(app, db_url):
    _postgresql_only(db_url)
    with app.session() as long:
        long.add(Household(code="H1", name="张伟", status="prospective"))  # the ORM flush hook
        long.flush()
        audit.record(long, "import", "households", detail="长事务")
        with app.session() as short, transaction(short):
            # With the chain lock taken at insert, this waited for the long transaction.
            short.execute(text("SET LOCAL lock_timeout = '5s'"))
            audit.record(short, "note", "households", detail="短事务")
        # Committed and chained while the long transaction is still open.
        assert [detail for _seq, _id, detail in _chain(app)][-1] == "短事务"
        assert _check(app).broken is None
        long.commit()
    chain = _chain(app)
    assert [detail for _seq, _id, detail in chain[-3:]] == ["短事务", None, "长事务"]
    short_id, create_id, import_id = (row_id for _seq, row_id, _detail in chain[-3:])
    assert create_id < import_id < short_id
    assert _check(app).broken is None


def test_postgresql_a_role_that_may_only_insert_gets_its_entries_chained(app, db_url):
    """The seal updates the row as the function's owner: a role with INSERT and no UPDATE
    (nor SELECT) on audit_log still writes chained entries, and cannot update them itself."""
    from sqlalchemy.exc import ProgrammingError

    _postgresql_only(db_url)
    _record(app, 2)
    before = len(_ids(app))
    role = f"crm_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
            schema = connection.scalar(text("SELECT current_schema()"))
            connection.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
            connection.execute(text(f'GRANT INSERT ON audit_log TO "{role}"'))
            sequence = connection.scalar(text("SELECT pg_get_serial_sequence('audit_log', 'id')"))
            connection.execute(text(f'GRANT USAGE ON SEQUENCE {sequence} TO "{role}"'))
        with engine.begin() as connection:
            connection.execute(text(f'SET LOCAL ROLE "{role}"'))
            connection.execute(
                text(
                    "INSERT INTO audit_log (at, actor, role, action, entity)"
                    " VALUES (now(), '前台', 'agent', 'note', 'households')"
                )
            )
        with pytest.raises(ProgrammingError, match="permission denied"), engine.begin() as conn:
            conn.execute(text(f'SET LOCAL ROLE "{role}"'))
            conn.execute(text("UPDATE audit_log SET detail = '改过'"))
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP OWNED BY "{role}"'))
            connection.execute(text(f'DROP ROLE "{role}"'))
        engine.dispose()
    with app.session() as session:
        last = session.scalars(select(AuditEntry).order_by(AuditEntry.chain_seq.desc())).first()
    assert last.actor == "前台" and last.chain_seq == before + 1 and last.hash
    assert _check(app).broken is None


def test_verify_checks_a_noted_chain_end(app, run, db_url):
    _record(app, 4)
    noted = _check(app).last_hash
    _record(app, 2, start=5)
    kept = run("audit", "verify", "--expect", noted.upper(), as_=MANAGER)
    assert kept.exit_code == 0, kept.output
    assert f"第 {_ids(app)[-3]} 条记录" in kept.stdout
    # Deleting the newest entries, the noted one among them, leaves a whole but shorter chain.
    _tamper(db_url, "DELETE FROM audit_log WHERE id >= :id", id=_ids(app)[-3])
    assert _check(app).broken is None
    lost = run("audit", "verify", "--expect", noted, as_=MANAGER)
    assert lost.exit_code == 1 and "已不在链上" in lost.stdout
