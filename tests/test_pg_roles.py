"""On PostgreSQL the database decides who someone is: each role logs in with its own login,
and plain SQL shows what each can and cannot do; the CLI takes identity from the login."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from crm.cli import cli
from crm.core.logins import create_login
from crm.core.models import Household, Member, Setting
from crm.core.privacy import seal_member_fields
from crm.core.security import ROLES

ROLE_CODES = list(ROLES)


@pytest.fixture
def pg_db(db_url):
    """This test's PostgreSQL schema (emptied after the test); the SQLite run is skipped."""
    if not db_url.startswith("postgresql"):
        pytest.skip("database logins are PostgreSQL's")
    return db_url


@pytest.fixture
def pg_app(pg_db, app):
    return app


@pytest.fixture
def logins(pg_app, pg_db):
    """One login per CRM role, made by `create_login` as the owner; dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    made = {role: f"crmt_{tag}_{role}" for role in ROLE_CODES}
    with pg_app.session() as session, session.begin():
        for role, login in made.items():
            create_login(session, login, role, password=f"pw-{tag}")
    yield made
    owner = create_engine(pg_db)
    with owner.begin() as conn:
        for login in made.values():
            conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{login}"')
    owner.dispose()


def url_as(pg_db: str, login: str, password: str | None = None) -> str:
    url = make_url(pg_db).set(username=login, password=password)
    return url.render_as_string(hide_password=False)


def sql_as(pg_db: str, login: str, statement: str):
    """Run one statement as `login` in its own transaction; returns the rows or raises."""
    engine = create_engine(url_as(pg_db, login))
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement))
            return result.all() if result.returns_rows else None
    finally:
        engine.dispose()


def test_each_role_logs_in_and_plain_sql_shows_what_it_may_do(logins, pg_db):
    for role, login in logins.items():
        assert sql_as(pg_db, login, "SELECT crm_role_of(session_user)") == [(role,)]
        assert sql_as(pg_db, login, "SELECT count(*) FROM households")[0][0] >= 0
        # Whatever the client writes, the audit row names the login that wrote it.
        forged = sql_as(
            pg_db,
            login,
            "INSERT INTO audit_log (at, actor, role, action, entity)"
            " VALUES (now(), 'system', 'admin', 'forged', 'audit_log') RETURNING actor, role",
        )
        assert forged == [(login, role)]
        for change in (
            "UPDATE audit_log SET detail = 'changed'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(ProgrammingError, match="permission denied"):
                sql_as(pg_db, login, change)
        if role != "admin":
            with pytest.raises(ProgrammingError, match="permission denied"):
                sql_as(pg_db, login, "SET ROLE crm_admin")
    # The owner of the schema may rewrite the log (and nobody else may).
    owner = create_engine(pg_db)
    with owner.connect() as conn:
        assert conn.execute(text("DELETE FROM audit_log WHERE action = 'forged'")).rowcount == 5
        conn.rollback()
    owner.dispose()


def test_a_login_without_a_crm_role_is_refused(pg_app, pg_db):
    login = f"crmt_{uuid.uuid4().hex[:8]}_none"
    owner = create_engine(pg_db)
    with owner.begin() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{login}" LOGIN')
        conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{make_schema(pg_db)}" TO "{login}"')
    try:
        result = CliRunner().invoke(cli, ["--db", url_as(pg_db, login), "household", "list"])
        assert result.exit_code != 0
        assert f"数据库登录“{login}”没有 CRM 角色" in result.output
        assert "Traceback" not in result.output
    finally:
        with owner.begin() as conn:
            conn.exec_driver_sql(f'REVOKE USAGE ON SCHEMA "{make_schema(pg_db)}" FROM "{login}"')
            conn.exec_driver_sql(f'DROP ROLE "{login}"')
        owner.dispose()


def make_schema(pg_db: str) -> str:
    options = make_url(pg_db).query["options"]
    return options.split("search_path=", 1)[1].split()[0]


# What each role may do through the CLI; the permission table of crm.core.security, checked
# with the identity the database gives.
MATRIX = [
    (("household", "list"), {"sales", "agent", "manager", "analyst", "admin"}),
    (("audit", "list"), {"manager", "admin"}),
    (("scheduler", "set", "sla_check", "10m"), {"manager", "admin"}),
    (
        ("ticket", "open", "H1", "--type", "complaint", "--channel", "phone", "--summary", "漏水"),
        {"sales", "agent", "manager", "admin"},
    ),
    (("staff", "logins"), {"sales", "agent", "manager", "analyst", "admin"}),
    (("coordinate", "run"), {"sales", "agent", "manager", "admin"}),
    (("profitability", "settings", "set", "discount_rate", "0.05"), {"manager", "admin"}),
    (("staff", "role", "nobody_here", "agent"), set()),  # admin may; the login does not exist
]


def test_role_by_command_matrix_with_real_logins(logins, pg_db, pg_app):
    with pg_app.session() as session, session.begin():
        household = Household(code="H1", name="李家", status="existing")
        vault = session.info["vault"]
        household.members.append(
            Member(name="李明", role="owner", **seal_member_fields(vault, phone="13812345678"))
        )
        session.add(household)
    runner = CliRunner()
    for args, allowed in MATRIX:
        for role, login in logins.items():
            result = runner.invoke(cli, ["--db", url_as(pg_db, login), *args])
            assert "Traceback" not in result.output, (args, role, result.output)
            if role in allowed:
                assert result.exit_code == 0, (args, role, result.output)
            else:
                assert result.exit_code != 0, (args, role, result.output)
                assert "无权" in result.output or "找不到" in result.output, result.output
    # Every role may export members; only manager and admin see the numbers, and their
    # full view is on record under their own login.
    for role, login in logins.items():
        exported = runner.invoke(cli, ["--db", url_as(pg_db, login), "export", "members"])
        assert exported.exit_code == 0, exported.output
        full = role in ("manager", "admin")
        assert ("13812345678" in exported.output) is full
        assert ("138****5678" in exported.output) is not full
    with pg_app.session() as session:
        exports = session.execute(
            text("SELECT actor, detail FROM audit_log WHERE action = 'export' ORDER BY id")
        ).all()
    assert [actor for actor, _ in exports] == list(logins.values())
    viewers = [actor for actor, detail in exports if "完整个人信息" in detail]
    assert viewers == [logins["manager"], logins["admin"]]
    # Audit entries name the login that acted.
    listing = runner.invoke(
        cli, ["--db", url_as(pg_db, logins["manager"]), "audit", "list", "--format", "json"]
    )
    actors = {entry["actor"] for entry in json.loads(listing.output)}
    assert logins["sales"] in actors and "system" not in actors


def test_a_login_cannot_claim_another_role(logins, pg_db):
    runner = CliRunner()
    login = logins["sales"]
    claimed = runner.invoke(
        cli, ["--db", url_as(pg_db, login), "--as", "王经理:admin", "audit", "list"]
    )
    assert claimed.exit_code != 0 and "身份和角色由数据库登录决定" in claimed.output
    same = runner.invoke(
        cli, ["--db", url_as(pg_db, login), "--as", "x:sales", "household", "list"]
    )
    assert same.exit_code == 0, same.output


def test_staff_role_moves_a_login_and_is_audited(logins, pg_db, pg_app):
    runner = CliRunner()
    login = logins["agent"]
    moved = runner.invoke(cli, ["--db", pg_db, "staff", "role", login, "manager"])
    assert moved.exit_code == 0 and "客服专员 → 经理" in moved.output, moved.output
    assert sql_as(pg_db, login, "SELECT crm_role_of(session_user)") == [("manager",)]
    listed = runner.invoke(cli, ["--db", pg_db, "staff", "logins", "--format", "json"])
    logins = json.loads(listed.output)
    assert {"login": login, "role": "manager", "role_label": "经理"} in logins
    with pg_app.session() as session:
        changes = session.scalar(
            text("SELECT changes FROM audit_log WHERE action = 'set_login_role'")
        )
    assert changes == {"role": ["agent", "manager"]}


def test_logins_are_for_postgresql_only(run, db_url):
    result = run("staff", "role", "zhang", "agent")
    assert result.exit_code != 0 and "Traceback" not in result.output
    if db_url.startswith("sqlite"):
        assert "数据库登录只用于 PostgreSQL" in result.output
    else:
        assert "找不到数据库登录“zhang”" in result.output
    added = run("staff", "add", "张三", "--team", "nope", "--login", "Bad-Name")
    assert added.exit_code != 0 and "Traceback" not in added.output
    # Refused before the password is asked for (twice), not after.
    asked = run("staff", "add", "张三", "--team", "nope", "--login", "zhang", "--ask-password")
    assert asked.exit_code != 0 and "找不到团队" in asked.output and "密码" not in asked.output


def _seed_li(pg_app, phone="13812345678", id_number="110105199001011234"):
    with pg_app.session() as session, session.begin():
        household = Household(code="H1", name="李家", status="existing")
        vault = session.info["vault"]
        household.members.append(
            Member(
                name="李明",
                role="owner",
                **seal_member_fields(vault, phone=phone, id_number=id_number),
            )
        )
        session.add(household)
        session.flush()
        return household.members[0].id, vault.lookup_hash(phone)


def test_no_login_but_the_owner_reads_ciphertext_or_hashes(logins, pg_db, pg_app):
    _member_id, digest = _seed_li(pg_app)
    for role, login in logins.items():
        for column in (
            "phone_enc",
            "phone_hash",
            "alt_phone_enc",
            "id_number_enc",
            "id_number_hash",
        ):
            with pytest.raises(ProgrammingError, match="permission denied"):
                sql_as(pg_db, login, f"SELECT {column} FROM members")
        with pytest.raises(ProgrammingError, match="permission denied"):
            sql_as(pg_db, login, f"SELECT id FROM members WHERE phone_hash = '{digest}'")
        # What every role is shown: the masked forms.
        assert sql_as(
            pg_db, login, "SELECT phone_masked, phone_tail, id_number_masked FROM members"
        ) == [("138****5678", "5678", "110105********1234")], role


def test_full_values_come_only_through_the_function_that_audits_them(logins, pg_db, pg_app):
    member_id, _ = _seed_li(pg_app)
    reveal = f"SELECT member_id, phone_token FROM crm_reveal_members(ARRAY[{member_id}], '核对')"
    for role in ("sales", "agent", "analyst"):
        with pytest.raises(ProgrammingError, match="只有经理和管理员"):
            sql_as(pg_db, logins[role], reveal)
    login = logins["manager"]
    engine = create_engine(url_as(pg_db, login))
    try:
        with engine.begin() as conn:
            ((found_id, token),) = conn.execute(text(reveal)).all()
            # The entry is in the same transaction, written before the values came back.
            entry = conn.execute(
                text("SELECT actor, role, detail FROM audit_log WHERE action = 'view_personal'")
            ).one()
        assert found_id == member_id and entry == (
            login,
            "manager",
            f"核对；完整显示 1 人：{member_id}",
        )
        assert pg_app.vault.decrypt(token) == "13812345678"
        # A transaction that cannot write the entry gets nothing.
        with engine.connect() as conn:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            with pytest.raises(Exception, match="read-only transaction"):
                conn.execute(text(reveal)).all()
    finally:
        engine.dispose()


def test_the_database_limits_searches_by_personal_data(logins, pg_db, pg_app):
    member_id, digest = _seed_li(pg_app)
    with pg_app.session() as session, session.begin():
        session.add(Setting(key="privacy.search_limit_per_hour", value="3"))
    search = f"SELECT crm_find_members('phone', '{digest}', '按电话查找')"
    sales = logins["sales"]
    assert [sql_as(pg_db, sales, search) for _ in range(3)] == [[([member_id],)]] * 3
    # The fourth is refused; the refusal is on record although the caller got nothing.
    assert sql_as(pg_db, sales, search) == [(None,)]
    with pg_app.session() as session:
        counts = dict(
            session.execute(
                text("SELECT action, count(*) FROM audit_log WHERE actor = :login GROUP BY action"),
                {"login": sales},
            ).all()
        )
    assert counts == {"search_personal": 3, "search_limit": 1}
    # A manager, who may see the numbers anyway, is audited but not limited.
    manager = logins["manager"]
    assert [sql_as(pg_db, manager, search) for _ in range(5)] == [[([member_id],)]] * 5


def test_the_cli_of_each_role_searches_shows_and_imports_through_the_database(
    logins, pg_db, pg_app, tmp_path
):
    member_id, _ = _seed_li(pg_app)
    runner = CliRunner()

    def crm(login, *args):
        result = runner.invoke(cli, ["--db", url_as(pg_db, login), *args])
        assert "Traceback" not in result.output, result.output
        return result

    for role, login in logins.items():
        found = crm(login, "household", "search", "13812345678")
        assert found.exit_code == 0 and "H1" in found.output, (role, found.output)
        card = crm(login, "household", "show", "H1")
        assert card.exit_code == 0, card.output
        assert ("13812345678" in card.output) is (role in ("manager", "admin")), role
        assert "138****5678" in card.output or role in ("manager", "admin")
    # A salesperson's import of a new number is written by the database, which says what
    # changed; the same file again changes nothing.
    members = tmp_path / "members.csv"
    members.write_text("客户编号,姓名,手机\nH1,李明,13900001111\n", encoding="utf-8")
    first = crm(logins["sales"], "import", "members", str(members))
    assert first.exit_code == 0 and "更新 1" in first.output, first.output
    again = crm(logins["sales"], "import", "members", str(members))
    assert again.exit_code == 0 and "未变 1" in again.output, again.output
    with pg_app.session() as session:
        stored = session.execute(
            text("SELECT phone_enc, phone_masked, phone_tail FROM members WHERE id = :id"),
            {"id": member_id},
        ).one()
        changes = session.scalar(
            text("SELECT changes FROM audit_log WHERE action = 'update' AND entity = 'members'")
        )
    assert pg_app.vault.decrypt(stored[0]) == "13900001111"
    assert stored[1:] == ("139****1111", "1111")
    assert changes == {"phone": ["***", "***（已更改）"]}


def test_every_role_finds_a_members_second_phone_by_number_and_tail(
    logins, pg_db, pg_app, tmp_path
):
    """The alternative phone is found in full and by its tail through crm_find_members, as
    the main one is (migration 0007); an import of a new one writes its tail."""
    with pg_app.session() as session, session.begin():
        household = Household(code="H2", name="周家", status="existing")
        household.members.append(
            Member(
                name="周敏",
                role="co_owner",
                **seal_member_fields(
                    session.info["vault"], phone="13700002222", alt_phone="13655556666"
                ),
            )
        )
        session.add(household)
        session.flush()
        member_id = household.members[0].id
    runner = CliRunner()
    for role, login in logins.items():
        assert sql_as(pg_db, login, "SELECT alt_phone_tail FROM members") == [("6666",)], role
        assert sql_as(pg_db, login, "SELECT crm_find_members('tail', '6666', '按尾号')") == [
            ([member_id],)
        ], role
        for query in ("13655556666", "6666"):
            found = runner.invoke(
                cli,
                ["--db", url_as(pg_db, login), "household", "search", query, "--format", "json"],
            )
            assert found.exit_code == 0, (role, found.output)
            assert [row["code"] for row in json.loads(found.stdout)] == ["H2"], (role, query)
    path = tmp_path / "members.csv"
    path.write_text("客户编号,姓名,备用电话\nH2,周敏,13655557777\n", encoding="utf-8")
    imported = runner.invoke(
        cli, ["--db", url_as(pg_db, logins["sales"]), "import", "members", str(path)]
    )
    assert imported.exit_code == 0 and "更新 1" in imported.output, imported.output
    assert sql_as(pg_db, logins["agent"], "SELECT alt_phone_tail FROM members") == [("7777",)]


def test_only_managers_and_administrators_change_settings(logins, pg_db):
    raise_limit = (
        "INSERT INTO settings (key, value, updated_at)"
        " VALUES ('privacy.search_limit_per_hour', '100000', now())"
    )
    for role in ("sales", "agent", "analyst"):
        with pytest.raises(ProgrammingError, match="permission denied"):
            sql_as(pg_db, logins[role], raise_limit)
        assert sql_as(pg_db, logins[role], "SELECT count(*) FROM settings")[0][0] >= 1
    sql_as(pg_db, logins["manager"], raise_limit)
    runner = CliRunner()
    refused = runner.invoke(
        cli, ["--db", url_as(pg_db, logins["sales"]), "audit", "search-limit", "5"]
    )
    assert refused.exit_code != 0 and "无权" in refused.output
    assert "Traceback" not in refused.output


def test_a_caller_login_sees_the_phones_of_its_own_contacts_and_cannot_take_others(
    logins, pg_db, pg_app
):
    with pg_app.session() as session, session.begin():
        vault = session.info["vault"]
        for number in range(4):
            household = Household(
                code=f"H{number}",
                name=f"{number}号家",
                status="existing",
                consent_contact=True,
                consent_marketing=True,
            )
            phone = f"1381234000{number}"
            household.members.append(
                Member(name=f"业主{number}", role="owner", **seal_member_fields(vault, phone=phone))
            )
            session.add(household)
    runner = CliRunner()

    def crm(login, *args):
        result = runner.invoke(cli, ["--db", url_as(pg_db, login), *args])
        assert "Traceback" not in result.output, result.output
        return result

    created = crm(
        logins["manager"], "campaign", "create", "REF", "--name", "老带新", "--kind", "老带新",
        "--channel", "电话", "--template", "{家庭}您好",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    run_id = json.loads(crm(logins["sales"], "campaign", "run", "REF", "--format", "json").stdout)[
        "run"
    ]
    sales, agent = logins["sales"], logins["agent"]
    assert crm(logins["manager"], "campaign", "assign", str(run_id), "nobody").exit_code != 0
    given = crm(logins["manager"], "campaign", "assign", str(run_id), sales, agent)
    assert given.exit_code == 0, given.output
    for login in (sales, agent):
        rows = json.loads(
            crm(login, "campaign", "contacts", str(run_id), "--format", "json").stdout
        )
        assert len(rows) == 4
        for row in rows:
            full = row["phone"].startswith("1381234000")
            assert full is (row["caller"] == login), (login, row)
    # Plain SQL: the database shows each caller only its own, and nobody takes another's list.
    own = sql_as(pg_db, sales, f"SELECT member_id FROM camp_reveal_assigned({run_id}, '核对')")
    assert len(own) == 2
    assert (
        sql_as(pg_db, logins["analyst"], f"SELECT * FROM camp_reveal_assigned({run_id}, 'x')") == []
    )
    with pytest.raises(ProgrammingError, match="permission denied"):
        sql_as(pg_db, sales, "UPDATE camp_contacts SET caller = session_user")
    with pg_app.session() as session:
        viewers = (
            session.execute(
                text(
                    "SELECT actor FROM audit_log WHERE action = 'view_personal' ORDER BY chain_seq"
                )
            )
            .scalars()
            .all()
        )
    assert viewers == [sales, agent, sales]


def test_the_core_chain_down_and_up_again_leaves_the_plugins_grants_as_they_were(
    logins, pg_db, pg_app
):
    """The core's roles migration (0005), run again after a downgrade, grants only what it
    revoked: a plugin's narrower grant (only a manager sets a contact's caller, camp0005)
    stays narrow, and staff keep the rest of the plugins' tables."""
    from alembic import command
    from alembic.config import Config

    chain = next(chain for chain in pg_app.migration_chains() if chain.name == "core")
    for step, revision in ((command.downgrade, "0004"), (command.upgrade, "head")):
        with pg_app.engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(chain.location))
            config.attributes.update(version_table=chain.version_table, connection=connection)
            step(config, revision)
    with pytest.raises(ProgrammingError, match="permission denied"):
        sql_as(pg_db, logins["sales"], "UPDATE camp_contacts SET caller = session_user")
    assert sql_as(pg_db, logins["sales"], "SELECT count(*) FROM svc_tickets") == [(0,)]
    # The core's own tables are granted again, members column by column as 0006 does.
    added = CliRunner().invoke(
        cli,
        ["--db", url_as(pg_db, logins["manager"]), "household", "add", "H9", "--name", "九号家",
         "--owner-name", "业主", "--phone", "13800000009"],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert sql_as(pg_db, logins["agent"], "SELECT count(*) FROM households") == [(1,)]
