"""`crm demo`: a small sample portfolio through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import MetaData, func, select, text
from sqlalchemy.engine import make_url

from crm.core.db import transaction
from crm.core.demo import MARKER, TABLES, build_demo
from crm.core.identity import normalize_id_number, normalize_phone
from crm.core.models import (
    AuditEntry,
    Household,
    Member,
    Project,
    Purchase,
    Referral,
    ServiceRecord,
    Setting,
    Unit,
)
from crm.core.vocab import SERVICE_KINDS

N = 300
UNIT_CODE = re.compile(r"\d{3,4}|\d{1,2}-[12][AB]|\d[AB]-[123][ABC]")


@pytest.fixture
def demo(run, fixed_now_text):
    """Run `crm demo` with N households at FIXED_NOW; returns the CLI result."""

    def build(*extra: str):
        result = run("demo", "--households", str(N), "--now", fixed_now_text, *extra)
        assert result.exit_code == 0, result.output
        return result

    return build


def _households(session) -> list[tuple[str, str, int | None]]:
    return session.execute(
        select(Household.code, Household.name, Household.age).order_by(Household.code)
    ).all()


def test_demo_builds_a_realistic_portfolio(demo, app):
    result = demo()
    assert "接下来可以试试" in result.stdout
    with app.session() as session:
        assert session.scalar(select(func.count()).select_from(Household)) == N
        assert 6 <= session.scalar(select(func.count()).select_from(Project)) <= 8
        statuses = dict(
            session.execute(select(Household.status, func.count()).group_by(Household.status)).all()
        )
        assert 0.10 <= statuses["prospective"] / N <= 0.25
        prospects_buying = session.scalar(
            select(func.count())
            .select_from(Purchase)
            .join(Household, Purchase.household_id == Household.id)
            .where(Household.status == "prospective")
        )
        assert prospects_buying == 0

        purchases = session.scalars(select(Purchase)).all()
        referred = [p for p in purchases if p.channel == "referral"]
        assert 0.30 <= len(referred) / len(purchases) <= 0.50
        assert all(p.referrer_household_id not in (None, p.household_id) for p in referred)
        referrals = session.scalars(select(Referral)).all()
        assert len(referrals) == len(referred)
        first_sale = {}
        for p in sorted(purchases, key=lambda p: p.purchase_date):
            first_sale.setdefault(p.household_id, p.purchase_date)
        by_id = {p.id: p for p in purchases}
        for referral in referrals:
            sale = by_id[referral.purchase_id]
            assert sale.household_id == referral.referred_household_id
            assert first_sale[referral.referrer_household_id] <= sale.purchase_date

        per_household = {}
        for p in purchases:
            per_household[p.household_id] = per_household.get(p.household_id, 0) + 1
        assert any(count >= 2 for count in per_household.values()), "no repeat buyers"
        # The seed's "万客会会员重复购买率 65.3 %" is a rate among member owners (those whose
        # first purchase is old enough to have been followed by another), not the members'
        # share of repeat buyers.
        today = dt.date(2026, 12, 2)  # FIXED_NOW's business date
        tiers = dict(session.execute(select(Household.id, Household.member_tier)).all())
        members = [
            hid
            for hid, first in first_sale.items()
            if tiers[hid] != "none" and (today - first).days >= 240
        ]
        rate = sum(per_household[hid] >= 2 for hid in members) / len(members)
        others = [hid for hid, first in first_sale.items() if tiers[hid] == "none"]
        other_rate = sum(per_household[hid] >= 2 for hid in others) / len(others)
        assert 0.55 <= rate <= 0.75 and other_rate < 0.2, (rate, other_rate)
        shown = re.search(r"会员复购率 (\d+\.\d)%", result.stdout)
        assert shown and abs(float(shown.group(1)) / 100 - rate) < 0.001, result.stdout

        for p in purchases:
            assert p.amount > 0 and p.floor_area > 0
            if p.handover_date is not None:
                assert p.purchase_date < p.handover_date <= today
        # one unit is sold once
        sold = [p.unit_id for p in purchases]
        assert len(sold) == len(set(sold))
        codes = session.scalars(select(Unit.code)).all()
        assert all(UNIT_CODE.fullmatch(code) for code in codes), codes[:20]

        # The legacy records the core generates (tickets keep their own register entries).
        records = session.scalars(
            select(ServiceRecord).where(ServiceRecord.managed_by.is_(None))
        ).all()
        assert {r.kind for r in records} == set(SERVICE_KINDS) - {"enquiry"}
        handover = {(p.household_id, p.unit_id): p.handover_date for p in purchases}
        for record in records:
            assert handover[(record.household_id, record.unit_id)] <= record.opened_at.date()
            if record.status == "closed":
                assert record.closed_at > record.opened_at and record.result
            else:
                assert record.closed_at is None

        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "demo")).all()
        assert len(entries) == 1 and entries[0].changes["households"] == [0, N]
        assert session.get(Setting, MARKER) is not None


def test_next_steps_name_real_data(demo, app):
    out = demo().stdout
    assert "crm --db " in out  # named on the command line, so the hints repeat it
    code = re.search(r"household show (\S+)", out).group(1)
    name = re.search(r"household search (\S+)", out).group(1)
    project = re.search(r"household list --project (\S+)", out).group(1)
    with app.session() as session:
        household = session.scalar(select(Household).where(Household.code == code))
        assert household is not None and household.status == "existing"
        assert name in session.scalars(select(Member.name)).all()
        assert session.scalar(select(Project.id).where(Project.name == project)) is not None


def test_personal_data_is_valid_and_only_stored_sealed(demo, app, db_url):
    demo()
    vault = app.vault
    plain = []
    with app.session() as session:
        rows = session.execute(
            select(Member, Household.age).join(Household, Member.household_id == Household.id)
        ).all()
        assert len(rows) > N
        for member, household_age in rows:
            phone = vault.decrypt(member.phone_enc)
            if phone is not None:
                assert normalize_phone(phone, mobile_only=True) == phone
                assert member.phone_tail == phone[-4:]
                assert member.phone_hash == vault.lookup_hash(phone)
                plain.append(phone)
            id_number = vault.decrypt(member.id_number_enc)
            if id_number is not None:
                assert normalize_id_number(id_number) == id_number  # GB 11643 check digit
                plain.append(id_number)
                if member.role == "owner":
                    born = dt.date(
                        int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14])
                    )
                    today = dt.date(2026, 12, 2)  # FIXED_NOW's business date
                    age = (
                        today.year - born.year - ((today.month, today.day) < (born.month, born.day))
                    )
                    assert age == household_age
        assert sum(1 for m, _ in rows if m.id_number_enc) > N / 2
    stored = _stored_text(db_url, app)
    with app.session() as session:  # the dump does hold the data in the clear where it may
        assert session.scalar(select(Member.name).limit(1)).encode() in stored
    leaked = [value for value in plain if value.encode() in stored]
    assert not leaked, leaked[:5]


def _stored_text(db_url: str, app) -> bytes:
    """Every byte the database holds: the SQLite file (and its WAL), or on PostgreSQL every
    row of every table as text."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database)
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    with app.engine.connect() as conn:
        names = [t.name for t in TABLES] + ["audit_log", "settings"]
        return "\n".join(
            conn.scalar(text(f"SELECT string_agg(t::text, E'\\n') FROM {name} t")) or ""
            for name in names
        ).encode()


def test_refuses_a_database_with_other_households(run, app):
    with app.session() as session, transaction(session):
        session.add(Household(code="C001", name="李小姐家", status="existing"))
    result = run("demo", "--households", "20")
    assert result.exit_code == 1
    assert "不是由 crm demo 生成" in result.output and "Traceback" not in result.output
    with app.session() as session:
        assert session.scalars(select(Household.code)).all() == ["C001"]


def _household_count(app) -> int:
    with app.session() as session:
        return session.scalar(select(func.count()).select_from(Household))


def test_a_demo_with_imported_households_is_never_replaced(demo, run, app, tmp_path):
    """The demo became a real database: households imported later are not wiped, by
    anyone, with or without --replace."""
    demo()
    source = tmp_path / "households.csv"
    source.write_text("户号,姓名,客户状态\nR001,张伟,准客户\nR002,李娜,准客户\n", encoding="utf-8")
    assert run("import", "households", str(source)).exit_code == 0
    for extra in ((), ("--replace",)):
        result = run("demo", "--households", "50", *extra)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "生成之后又新增或导入了数据（客户家庭 2 户" in result.output, result.output
        assert "--db" in result.output
        assert _household_count(app) == N + 2
    # A member added to a demo household counts too.
    with app.session() as session, transaction(session):
        session.execute(text("DELETE FROM households WHERE code IN ('R001', 'R002')"))
        session.add(Member(household_id=1, name="新成员"))
    result = run("demo", "--households", "50", "--replace")
    assert result.exit_code == 1 and "家庭成员 1 人" in result.output, result.output


def test_replacing_a_demo_needs_replace_and_an_administrator(demo, run, app, db_url):
    from click.testing import CliRunner

    from crm.cli import cli

    demo()
    # The default role (no --as): a service agent.
    plain = CliRunner().invoke(cli, ["--db", db_url, "demo", "--households", "50"])
    assert plain.exit_code == 1 and "Traceback" not in plain.output
    assert "已有演示数据（楼盘 8 个" in plain.output and "--replace" in plain.output
    forced = CliRunner().invoke(cli, ["--db", db_url, "demo", "--households", "50", "--replace"])
    assert forced.exit_code == 3 and "系统管理员" in forced.output, forced.output
    manager = run("demo", "--households", "50", "--replace", as_="王经理:manager")
    assert manager.exit_code == 3
    assert _household_count(app) == N
    replaced = demo("--replace")
    assert "已重建" in replaced.stdout and _household_count(app) == N


def test_a_demo_built_before_its_rows_were_recorded_is_checked_by_its_audit_entry(demo, run, app):
    demo()
    with app.session() as session, transaction(session):
        session.execute(text("DELETE FROM settings WHERE key = 'demo.rows'"))
    assert demo("--replace").exit_code == 0  # the counts match the demo's audit entry
    with app.session() as session, transaction(session):
        session.execute(text("DELETE FROM settings WHERE key = 'demo.rows'"))
        session.add(Household(code="C001", name="李小姐家", status="existing"))
    result = run("demo", "--households", "50", "--replace")
    assert result.exit_code == 1 and "客户家庭 1 户" in result.output, result.output
    assert _household_count(app) == N + 1


def test_records_can_be_added_after_the_demo(app, fixed_now):
    with app.session() as session, transaction(session):
        summary = build_demo(session, households=40, seed=1, now=fixed_now)
    assert summary.counts["households"] == 40
    with app.session() as session, transaction(session):
        household = Household(code="NEW1", name="新客户家", status="prospective")
        session.add(household)
        session.flush()
        session.add(Member(household_id=household.id, name="新客户"))
    with app.session() as session:
        assert session.scalar(select(func.max(Household.id))) == 41


def test_demo_needs_the_write_permission(run):
    result = run("demo", "--households", "10", as_="小李:analyst")
    assert result.exit_code == 3 and "生成演示数据" in result.output


def test_runs_on_a_brand_new_machine(tmp_path, monkeypatch, fixed_now_text):
    from click.testing import CliRunner

    from crm.cli import cli

    monkeypatch.delenv("CRM_SECRET_KEY")  # no key and no database yet: the demo makes both
    result = CliRunner().invoke(cli, ["demo", "--households", "30", "--now", fixed_now_text])
    assert result.exit_code == 0, result.output
    home = tmp_path / "home"
    assert (home / "crm.db").exists() and (home / "secret.key").stat().st_mode & 0o077 == 0
    assert "crm household show H0000" in result.stdout
    assert "--db" not in result.stdout  # the default database needs no --db in the hints


# The tables a demo fills (the core's and the after-sales plugins'), compared by their business
# columns: time stamps of the insert itself and encrypted values (a fresh nonce each time) differ
# from run to run by design, and so do the ids of the revisit surveys, which the satisfaction
# library has the database number (PostgreSQL's sequences go on counting after a rebuild).
DIGEST_TABLES = {
    **{t.name: () for t in TABLES},
    "svc_staff": (),
    "svc_tickets": (),
    "svc_ticket_events": (),
    "svc_work_orders": (),
    "sat_surveys": ("id",),
    "sat_survey_aspects": ("id", "survey_id"),
}


def _digest(app) -> dict[str, str]:
    """A SHA-256 per table of its sorted rows, without created_at, updated_at, *_enc and the
    columns DIGEST_TABLES names."""
    import hashlib

    meta = MetaData()
    meta.reflect(bind=app.engine, only=list(DIGEST_TABLES))
    digests = {}
    with app.engine.connect() as conn:
        for name, skipped in DIGEST_TABLES.items():
            columns = [
                c
                for c in meta.tables[name].columns
                if c.name not in ("created_at", "updated_at", *skipped)
                and not c.name.endswith("_enc")
            ]
            rows = sorted(repr(tuple(row)) for row in conn.execute(select(*columns)))
            assert rows, name
            digests[name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return digests


def _purchase_dates(app) -> list[dt.date]:
    with app.session() as session:
        return session.scalars(select(Purchase.purchase_date).order_by(Purchase.id)).all()


def test_a_rebuild_with_the_same_seed_and_now_gives_the_same_data(run, app, monkeypatch):
    # The table's whole text on one line per row: a 120-column terminal would wrap it.
    monkeypatch.setenv("COLUMNS", "1000")

    def build(seed: str, now: str) -> str:
        result = run("demo", "--households", "60", "--seed", seed, "--now", now, "--replace")
        assert result.exit_code == 0, result.output
        return result.stdout

    build("3", "2026-06-15 09:30")
    first, dates = _digest(app), _purchase_dates(app)
    with app.session() as session:
        households = _households(session)
    assert "已重建" in build("3", "2026-06-15 09:30")
    assert _digest(app) == first
    with app.session() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "demo")
            )
            == 2
        )
    shown = run("audit", "list", "--action", "demo", as_="王经理:manager")
    assert shown.exit_code == 0 and "户数：60 → 60" in shown.stdout, shown.output

    # 31 days later on the business calendar (still 07-15 in UTC): the same portfolio, every
    # sale 31 days later.
    build("3", "2026-07-16 01:30")
    assert _purchase_dates(app) == [day + dt.timedelta(days=31) for day in dates]
    assert _digest(app) != first

    # Another seed: the same household codes, other people.
    build("7", "2026-07-16 01:30")
    with app.session() as session:
        other = _households(session)
    assert [code for code, *_ in other] == [code for code, *_ in households]
    assert [name for _, name, _ in other] != [name for _, name, _ in households]

    bad = run("demo", "--households", "60", "--now", "2026-07-15")
    assert bad.exit_code == 1 and "--now" in bad.output and "Traceback" not in bad.output
