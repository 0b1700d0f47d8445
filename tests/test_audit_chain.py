"""The audit log's hash chain: every insert path is chained by the database, `crm audit verify`
finds the first edited, missing, re-ordered or unchained row, the migration chains old rows,
and concurrent appends keep one chain in id order."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, select, text

from crm.core import audit
from crm.core.auditlog import EDITED, MISSING, REORDERED, UNCHAINED, verify_chain
from crm.core.db import transaction
from crm.core.models import AuditEntry, Household
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
    with app.session() as session:
        return list(session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)))


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
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    actions = {entry.action for entry in entries}
    assert {"demo", "note", "create", "import", "update"} <= actions
    assert all(entry.hash and len(entry.hash) == 64 for entry in entries)
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
    _tamper(db_url, "DELETE FROM audit_log WHERE id <= :id", id=ids[1])
    check = _check(app)
    assert check.broken.id == ids[2] and check.broken.problem == MISSING
    assert check.broken.previous_id is None


def test_verify_finds_reordered_rows(app, run, db_url):
    _record(app, 6)
    ids = _ids(app)
    second, third = ids[2], ids[3]
    swap = "UPDATE audit_log SET id = :new WHERE id = :old"
    _tamper(db_url, swap, old=second, new=-1)
    _tamper(db_url, swap, old=third, new=second)
    _tamper(db_url, swap, old=-1, new=third)
    check = _check(app)
    # The row now at `second` was chained after the one now at `third`.
    assert check.broken.id == second and check.broken.problem == REORDERED
    assert check.broken.linked_id == third
    result = run("audit", "verify", as_=MANAGER)
    assert result.exit_code == 1 and "顺序被调换" in result.stdout


def test_verify_finds_an_unchained_row(app, db_url):
    _record(app, 3)
    ids = _ids(app)
    _tamper(db_url, "UPDATE audit_log SET hash = NULL WHERE id = :id", id=ids[1])
    check = _check(app)
    assert check.broken.id == ids[1] and check.broken.problem == UNCHAINED


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


def test_postgresql_gives_ids_in_chain_order(app, db_url):
    """A transaction whose id was drawn first but which appends after another one's commit
    still follows it in id order: the trigger draws the id under the chain lock."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers before any id is drawn")
    first = create_engine(db_url)
    statement = text(
        "INSERT INTO audit_log (at, actor, role, action, entity)"
        " VALUES (now(), :actor, 'admin', 'note', 'households')"
    )
    try:
        with first.connect() as holder:
            holder.execute(statement, {"actor": "甲"})  # holds the chain lock until commit
            waiting = threading.Thread(
                target=_tamper,
                args=(
                    db_url,
                    statement.text,
                ),
                kwargs={"actor": "乙"},
            )
            waiting.start()
            waiting.join(timeout=1)
            assert waiting.is_alive()  # the second append waits for the first to commit
            holder.execute(statement, {"actor": "甲2"})
            holder.commit()
            waiting.join(timeout=10)
            assert not waiting.is_alive()
    finally:
        first.dispose()
    with app.session() as session:
        actors = list(session.scalars(select(AuditEntry.actor).order_by(AuditEntry.id)))
    assert actors[-3:] == ["甲", "甲2", "乙"]
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
