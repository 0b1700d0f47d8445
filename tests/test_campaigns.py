"""Referral and loyalty campaigns: targeting (stages, projects, hooks for segments, scores and
open complaints, consent), outreach lists that never list a household twice in a run, resumed
runs, contact attempts, last-touch attribution, masked exports and permissions."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from crm import hookimpl
from crm.core.db import transaction
from crm.core.demo import build_demo
from crm.core.errors import CrmError, PermissionDenied
from crm.core.models import (
    AuditEntry,
    Building,
    Household,
    Member,
    Project,
    Purchase,
    ServiceRecord,
    Unit,
)
from crm.core.privacy import seal_member_fields
from crm.core.security import User
from crm.plugins.campaigns.campaigns import (
    attributions,
    campaign_report,
    create_campaign,
    get_campaign,
    normalise_rule,
    record_attempt,
    run_campaign,
    target_households,
)
from crm.plugins.campaigns.models import Campaign, CampaignContact, CampaignRun

NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
PHONE = "13912345678"
# code, status, consent_marketing, purchase date, handover date, project
PLANTED = [
    ("OLD", "existing", True, dt.date(2018, 3, 1), dt.date(2020, 6, 1), "翠湖"),
    ("OWN", "existing", True, dt.date(2022, 5, 1), dt.date(2024, 1, 10), "翠湖"),
    ("NEW", "existing", True, dt.date(2025, 1, 5), dt.date(2026, 3, 1), "阳光"),
    ("SIGNED", "existing", True, dt.date(2026, 6, 1), None, "阳光"),
    ("NOMKT", "existing", False, dt.date(2019, 1, 1), dt.date(2020, 1, 1), "翠湖"),
    ("COMPLAIN", "existing", True, dt.date(2019, 1, 1), dt.date(2020, 2, 1), "翠湖"),
    ("TICKET", "existing", True, dt.date(2019, 1, 1), dt.date(2020, 3, 1), "翠湖"),
    ("PROSPECT", "prospective", True, None, None, "阳光"),
]


class FakeAnalysis:
    """Stands in for the analysis plugin: segments and scores."""

    def __init__(self, segments=None, scores=None):
        self.segments = segments
        self.scores = scores

    def _ids(self, session, by_code):
        ids = dict(session.execute(select(Household.code, Household.id)).all())
        return {ids[code]: value for code, value in by_code.items()}

    @hookimpl
    def household_segments(self, session):
        return None if self.segments is None else self._ids(session, self.segments)

    @hookimpl
    def propensity_scores(self, session, target):
        if self.scores is None or target not in self.scores:
            return None
        return self._ids(session, self.scores[target])


@pytest.fixture
def fake(app):
    plugin = FakeAnalysis()
    app.pm.register(plugin, name="fake-analysis")
    yield plugin
    app.pm.unregister(plugin)


@pytest.fixture
def planted(app):
    with app.session() as session, transaction(session):
        vault = session.info["vault"]
        projects = {name: Project(name=name) for name in ("翠湖", "阳光")}
        buildings = {name: Building(project=p, name="1栋") for name, p in projects.items()}
        for number, (code, status, marketing, bought, handover, project) in enumerate(PLANTED):
            home = Household(
                code=code, name=f"{code}家", status=status, consent_marketing=marketing,
                project=projects[project],
            )  # fmt: skip
            home.members.append(
                Member(name=f"{code}业主", role="owner", **seal_member_fields(vault, phone=PHONE))
            )
            if bought:
                home.purchases.append(
                    Purchase(
                        contract_no=f"C{number}",
                        unit=Unit(building=buildings[project], code=f"{number:04d}"),
                        purchase_date=bought,
                        amount=1_000_000,
                        handover_date=handover,
                    )
                )
            session.add(home)
        session.flush()
        complainer = session.scalar(select(Household.id).where(Household.code == "COMPLAIN"))
        session.add(
            ServiceRecord(
                record_no="TS-1", household_id=complainer, kind="complaint", status="open",
                opened_at=NOW - dt.timedelta(days=3), summary="渗水",
            )
        )  # fmt: skip
        # An open complaint ticket: its entry in the register, kept by service handling.
        with_ticket = session.scalar(select(Household.id).where(Household.code == "TICKET"))
        session.add(
            ServiceRecord(
                record_no="TS20260101-0001", household_id=with_ticket, kind="complaint",
                status="open", opened_at=NOW - dt.timedelta(days=1), summary="漏水",
                managed_by="service",
            )
        )  # fmt: skip


def _codes(session, ids):
    found = dict(session.execute(select(Household.id, Household.code)).all())
    return sorted(found[hid] for hid in ids)


def _campaign(session, code="REF", kind="referral", **rule):
    return create_campaign(
        session, code, "老带新有礼", kind, "短信", "{家庭}您好，{项目}老业主推荐有礼",
        normalise_rule(session, kind, **rule),
    )  # fmt: skip


def test_targeting_follows_stages_and_leaves_out_complaints_and_no_consent(app, planted, fake):
    with app.session() as session, transaction(session):
        everyone = _campaign(session, "ALL")
        stages = {
            stage: _campaign(session, f"S{n}", stages=[stage])
            for n, stage in enumerate(("已签约未交房", "交房一年内", "业主", "老业主", "准客户"))
        }
        by_project = _campaign(session, "PRJ", projects=["阳光"])
    with app.session() as session:
        assert _codes(session, target_households(session, everyone, NOW).household_ids) == [
            "NEW", "OLD", "OWN", "PROSPECT", "SIGNED",
        ]  # fmt: skip
        found = {
            stage: _codes(session, target_households(session, c, NOW).household_ids)
            for stage, c in stages.items()
        }
        assert found == {
            "已签约未交房": ["SIGNED"],
            "交房一年内": ["NEW"],
            "业主": ["OWN"],
            "老业主": ["OLD"],
            "准客户": ["PROSPECT"],
        }
        assert _codes(session, target_households(session, by_project, NOW).household_ids) == [
            "NEW", "PROSPECT", "SIGNED",
        ]  # fmt: skip


def test_segments_and_scores_come_only_from_the_hooks(app, planted, fake):
    with app.session() as session, transaction(session):
        by_segment = _campaign(session, "SEG", segments=["忠诚老业主"])
        by_score = _campaign(session, "SCORE", min_propensity=0.5)
    with app.session() as session:
        with pytest.raises(CrmError, match="crm analysis segments"):
            target_households(session, by_segment, NOW)
        with pytest.raises(CrmError, match="crm analysis propensity score"):
            target_households(session, by_score, NOW)
    fake.segments = {
        "OLD": "忠诚老业主",
        "OWN": "忠诚老业主",
        "NEW": "新业主",
        "NOMKT": "忠诚老业主",
    }
    # referral campaigns threshold the "refer" scores unless told otherwise
    fake.scores = {"refer": {"OLD": 0.7, "OWN": 0.2, "SIGNED": 0.5}, "buy_again": {"OWN": 0.9}}
    with app.session() as session:
        target = target_households(session, by_segment, NOW)
        assert _codes(session, target.household_ids) == ["OLD", "OWN"]
        assert set(target.segments.values()) == {"忠诚老业主"}
        target = target_households(session, by_score, NOW)
        assert _codes(session, target.household_ids) == ["OLD", "SIGNED"]
        assert sorted(target.scores.values()) == [0.5, 0.7]
    fake.segments = {"OLD": "高价值"}
    with app.session() as session, pytest.raises(CrmError, match="高价值"):
        target_households(session, by_segment, NOW)
    with app.session() as session:
        assert session.scalar(select(func.count()).select_from(CampaignRun)) == 0


def test_bad_template_schedule_and_rule_are_refused_in_one_sentence(app, planted, run):
    base = ["campaign", "create", "X1", "--name", "测试", "--kind", "老带新", "--channel", "短信"]
    cases = [
        (["--template", "{家人}您好"], "{家庭}"),
        (["--template", "{家庭您好"], "花括号"),
        (["--template", "{家庭!r}"], "占位符"),
        (["--template", "好", "--cron", "61 9 * * *"], "cron"),
        (["--template", "好", "--every", "7x"], "7d"),
        (["--template", "好", "--at", "明天"], "2026-12-01"),
        (["--template", "好", "--at", "2026-12-01 09:00", "--every", "7d"], "只能选一种"),
        (["--template", "好", "--stage", "钻石业主"], "老业主"),
        (["--template", "好", "--project", "不存在"], "项目"),
        (["--template", "好", "--min-propensity", "1.5"], "0 到 1"),
        (["--template", "好", "--channel", "飞鸽"], "短信"),
    ]
    for extra, hint in cases:
        result = run(*base, *extra)
        assert result.exit_code != 0 and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert hint in result.output, (extra, result.output)
    with app.session() as session:
        assert session.scalar(select(func.count()).select_from(Campaign)) == 0
    ok = run(
        *base, "--template", "{业主}您好，{项目}{活动}", "--cron", "0 9 * * 1", "--format", "json"
    )
    assert ok.exit_code == 0, ok.output
    record = json.loads(ok.stdout)
    assert record["schedule"] == "cron：0 9 * * 1" and record["kind"] == "老带新"
    again = run(*base, "--template", "好")
    assert again.exit_code != 0 and "已存在" in again.output


@pytest.fixture
def demo(app):
    with app.session() as session, transaction(session):
        build_demo(session, households=300, seed=11, now=NOW)


def test_two_runs_list_each_household_once_per_run(app, demo, run):
    with app.session() as session, transaction(session):
        _campaign(session, "LOY", kind="loyalty", stages=["业主", "老业主"])
    with app.session() as session:
        first = run_campaign(session, "LOY", now=NOW, batch_size=25)
        second = run_campaign(session, "LOY", now=NOW + dt.timedelta(days=7), batch_size=25)
    assert first.run_id != second.run_id and not first.resumed and not second.resumed
    assert first.audience == first.added > 25  # several batches
    with app.session() as session:
        target = target_households(session, get_campaign(session, "LOY"), NOW)
        assert first.audience == len(target.household_ids)
        per_run = session.execute(
            select(
                CampaignContact.run_id,
                func.count(),
                func.count(func.distinct(CampaignContact.household_id)),
            ).group_by(CampaignContact.run_id)
        ).all()
    assert sorted(per_run) == [
        (first.run_id, first.audience, first.audience),
        (second.run_id, second.audience, second.audience),
    ]
    report = json.loads(run("campaign", "report", "LOY", "--format", "json").stdout)
    assert [(r["run"], r["audience"], r["finished"]) for r in report] == [
        (first.run_id, first.audience, True),
        (second.run_id, second.audience, True),
    ]
    # A page of the runs, or the runs started in a range of local days, each with its figures.
    page = run("campaign", "report", "LOY", "--offset", "1", "--format", "json")
    assert json.loads(page.stdout) == report[1:]
    since = run("campaign", "report", "LOY", "--since", "2026-12-02", "--format", "json")
    assert json.loads(since.stdout) == report[1:]  # the second run: 2 December, 10:00 local
    table = run("campaign", "report", "LOY", "--until", "2026-11-25", "--limit", "1")
    assert table.stdout.splitlines()[-1] == "共 1 条，已全部显示。"
    listed = json.loads(run("campaign", "list", "--format", "json").stdout)
    assert [(c["code"], c["runs"]) for c in listed] == [("LOY", 2)]


def test_quiet_days_keep_a_household_off_the_next_runs_list(app, demo, run):
    with app.session() as session, transaction(session):
        _campaign(session, "QUIET", kind="loyalty", stages=["业主", "老业主"], quiet_days=30)
        ids = target_households(session, get_campaign(session, "QUIET"), NOW).household_ids
        # Another campaign's lists do not count against this one's quiet days.
        _campaign(session, "OTHER", kind="loyalty", stages=["业主", "老业主"])
    with app.session() as session:
        first = run_campaign(session, "QUIET", now=NOW)
        week_later = run_campaign(session, "QUIET", now=NOW + dt.timedelta(days=7))
        relisted = set(
            session.scalars(
                select(CampaignContact.household_id).where(
                    CampaignContact.run_id == week_later.run_id
                )
            )
        )
        newly_due = target_households(
            session, get_campaign(session, "OTHER"), NOW + dt.timedelta(days=7)
        ).household_ids
        other = run_campaign(session, "OTHER", now=NOW + dt.timedelta(days=7))
        later = NOW + dt.timedelta(days=31)
        due_again = target_households(session, get_campaign(session, "QUIET"), later)
        month_later = run_campaign(session, "QUIET", now=later)
    assert first.audience == len(ids) > 0
    # Everyone listed a week ago stays off; only a household that became due since is listed.
    assert not relisted & set(ids) and relisted == set(newly_due) - set(ids)
    assert other.audience == len(newly_due)
    # The quiet days are over: everyone still eligible a month on is listed again.
    assert month_later.audience == len(due_again.household_ids) >= len(ids)
    shown = json.loads(run("campaign", "show", "QUIET", "--format", "json").stdout)
    assert shown["rule"]["quiet_days"] == 30
    assert "30 天内已列入本活动名单的不再列入" in shown["target"]
    refused = run(
        "campaign", "create", "BAD", "--name", "x", "--kind", "一路同行", "--channel", "短信",
        "--template", "{家庭}您好", "--quiet-days", "-1",
    )  # fmt: skip
    assert refused.exit_code != 0 and "-1" in refused.output


def test_the_database_refuses_a_second_row_for_a_household_in_a_run(app, planted):
    with app.session() as session, transaction(session):
        _campaign(session)
    with app.session() as session:
        result = run_campaign(session, "REF", now=NOW)
        contact = session.scalars(select(CampaignContact)).first()
        row = {
            "run_id": result.run_id, "household_id": contact.household_id, "listed_at": NOW,
            "listed_on": NOW.date(), "message": "再来一次",
        }  # fmt: skip
        with pytest.raises(IntegrityError):
            session.execute(insert(CampaignContact), [row])
        session.rollback()


def test_an_unfinished_run_is_resumed_not_restarted(app, demo):
    with app.session() as session, transaction(session):
        _campaign(session, "RES", kind="loyalty")

    class Crash(Exception):
        pass

    def crash_after_two_batches(done, _total):
        if done >= 20:
            raise Crash

    with app.session() as session, pytest.raises(Crash):
        run_campaign(session, "RES", now=NOW, batch_size=10, progress=crash_after_two_batches)
    with app.session() as session:
        [crashed] = session.scalars(select(CampaignRun)).all()
        assert crashed.finished_at is None
        assert session.scalar(select(func.count()).select_from(CampaignContact)) == 20
    with app.session() as session:
        result = run_campaign(session, "RES", now=NOW, batch_size=10)
    assert result.resumed and result.run_id == crashed.id
    with app.session() as session:
        target = target_households(session, get_campaign(session, "RES"), NOW).household_ids
        listed = session.scalars(select(CampaignContact.household_id)).all()
        [finished] = session.scalars(select(CampaignRun)).all()
    assert sorted(listed) == target and result.added == len(target) - 20
    assert finished.finished_at is not None and finished.resumed == 1


def test_two_starts_at_once_share_one_run(app, demo, db_url):
    """Two schedulers (or a scheduler and a person) start the same campaign together: the
    database lets only one open a run, the other joins it, and nobody is listed twice."""
    import threading

    from crm.core.app import App
    from crm.plugins import BUILTIN_PLUGINS

    with app.session() as session, transaction(session):
        _campaign(session, "RACE", kind="loyalty")
    barrier = threading.Barrier(2)
    results, errors = [], []

    def start() -> None:
        own = App(db_url, user=User("外呼组", "manager"), builtins=BUILTIN_PLUGINS)
        try:
            with own.session() as session:
                session.scalar(select(Campaign.id).limit(1))  # connect before the race
                barrier.wait(timeout=10)
                results.append(run_campaign(session, "RACE", now=NOW, batch_size=20))
        except Exception as exc:  # noqa: BLE001  a thread cannot raise into the test: kept for the assert
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(results) == 2, errors
    with app.session() as session:
        runs = session.scalars(select(CampaignRun)).all()
        target = target_households(session, get_campaign(session, "RACE"), NOW).household_ids
        listed = session.scalars(select(CampaignContact.household_id)).all()
    assert len(runs) == 1 and {r.run_id for r in results} == {runs[0].id}
    assert sorted(listed) == target  # each once
    assert runs[0].finished_at is not None and runs[0].open_for_campaign is None


def _purchase(session, code, contract, day, amount, referrer=None):
    ids = dict(session.execute(select(Household.code, Household.id)).all())
    session.add(
        Purchase(
            contract_no=contract, household_id=ids[code], purchase_date=day, amount=amount,
            referrer_household_id=ids[referrer] if referrer else None,
        )
    )  # fmt: skip


def test_later_purchases_and_referrals_are_attributed_to_the_last_touch(app, planted, fake, run):
    with app.session() as session, transaction(session):
        _campaign(session, "SMS", stages=["老业主", "业主"])  # SMS: touched when the run lists
        create_campaign(
            session, "CALL", "回馈老业主", "loyalty", "电话", "{家庭}您好",
            normalise_rule(session, "loyalty", stages=["老业主"]), attribution_days=30,
        )  # fmt: skip
    with app.session() as session:
        sms = run_campaign(session, "SMS", now=NOW)
        call = run_campaign(session, "CALL", now=NOW)
    with app.session() as session, transaction(session):
        # a call that does not reach OWN is no touch; OLD is reached ten days after listing
        typed = NOW + dt.timedelta(days=11)
        record_attempt(
            session, call.run_id, "OLD", "未接通", at=NOW + dt.timedelta(days=9), now=typed
        )
        record_attempt(session, call.run_id, "OLD", "有意向", "想换大户型",
                       at=NOW + dt.timedelta(days=10), now=typed)  # fmt: skip
        day = NOW.date()
        _purchase(session, "PROSPECT", "R-1", day + dt.timedelta(days=5), 800_000, referrer="OLD")
        _purchase(session, "OLD", "B-1", day + dt.timedelta(days=20), 2_000_000)
        _purchase(session, "OWN", "B-2", day + dt.timedelta(days=40), 1_500_000)
        _purchase(session, "OWN", "B-3", day + dt.timedelta(days=120), 900_000)  # after 90 days
        _purchase(session, "NEW", "B-4", day + dt.timedelta(days=3), 700_000)  # not targeted
    with app.session() as session:
        found = {(a.kind, a.run_id, float(a.amount)) for a in attributions(session)}
        assert found == {
            ("referral", sms.run_id, 800_000.0),  # before the call reached OLD
            ("purchase", call.run_id, 2_000_000.0),  # SMS and call both qualify: last touch
            ("purchase", sms.run_id, 1_500_000.0),
        }
        [report] = campaign_report(session, "SMS")
        assert (report["purchases"], float(report["purchase_amount"])) == (1, 1_500_000.0)
        assert (report["referrals"], float(report["referral_amount"])) == (1, 800_000.0)
        [called] = campaign_report(session, "CALL")
    assert called["audience"] == 1 and called["contacted"] == 1 and called["reached"] == 1
    assert called["outcomes"] == {"有意向": 1}
    assert (called["purchases"], called["referrals"]) == (1, 0)
    table = run("campaign", "report", "CALL")
    assert table.exit_code == 0 and "有意向 1" in table.output


def test_contacts_are_recorded_by_agents_and_exported_masked(app, planted, fake, run, tmp_path):
    with app.session() as session, transaction(session):
        _campaign(session)
    ran = run("campaign", "run", "REF", "--format", "json", as_="李:sales")
    assert ran.exit_code == 0, ran.output
    run_id = json.loads(ran.stdout)["run"]
    attempt = run(
        "campaign", "contact", str(run_id), "OLD", "--outcome", "已预约", "--note", "周六看房",
        "--format", "json", as_="赵:agent",
    )  # fmt: skip
    assert attempt.exit_code == 0, attempt.output
    assert json.loads(attempt.stdout)["outcome"] == "已预约"
    missing = run("campaign", "contact", str(run_id), "NOMKT", "--outcome", "已接通")
    assert missing.exit_code != 0 and "名单" in missing.output
    bad = run("campaign", "contact", str(run_id), "OLD", "--outcome", "挂断")
    assert bad.exit_code != 0 and "已预约" in bad.output
    rows = json.loads(
        run("campaign", "contacts", str(run_id), "--format", "json", as_="李:sales").stdout
    )
    assert {r["phone"] for r in rows} == {"139****5678"}
    assert [r["household"] for r in rows if r["outcome"] == "已预约"] == ["OLD"]
    assert (
        next(r for r in rows if r["household"] == "OLD")["message"]
        == "OLD家您好，翠湖老业主推荐有礼"
    )
    xlsx = tmp_path / "missing" / "dir" / "list.xlsx"  # the folders are made
    assert run("campaign", "contacts", str(run_id), "-o", str(xlsx), as_="李:sales").exit_code == 0
    lines = list(load_workbook(xlsx, read_only=True).active.iter_rows(values_only=True))
    assert lines[0][:3] == ("执行编号", "客户编号", "客户名称") and len(lines) == len(rows) + 1
    assert {line[5] for line in lines[1:]} == {"139****5678"}
    full = json.loads(
        run("campaign", "contacts", str(run_id), "--format", "json", as_="王:manager").stdout
    )
    assert {r["phone"] for r in full} == {PHONE}
    denied = run("campaign", "run", "REF", as_="钱:analyst")
    assert denied.exit_code == 3 and "Traceback" not in denied.output
    with app.session() as session:
        session.info["user"] = User("钱", "agent")
        with pytest.raises(PermissionDenied):
            _campaign(session, "NOPE")


# --- outreach lists a caller can use -------------------------------------------------------


def test_callers_see_the_phones_of_their_own_contacts_only_in_score_order(app, planted, fake, run):
    fake.scores = {"refer": {"OLD": 0.7, "OWN": 0.2, "SIGNED": 0.5, "NEW": 0.4}}
    with app.session() as session, transaction(session):
        _campaign(session, min_propensity=0.1)
    with app.session() as session:  # the scores come through the hook: the library, not the CLI
        run_id = run_campaign(session, "REF", now=NOW).run_id
    # A salesperson may not hand the list to themselves; a manager shares it out.
    refused = run("campaign", "assign", str(run_id), "李", as_="李:sales")
    assert refused.exit_code == 3 and "无权" in refused.output
    given = run("campaign", "assign", str(run_id), "李", "张", "--format", "json", as_="王:manager")
    assert given.exit_code == 0, given.output
    assert json.loads(given.stdout) == [{"caller": "李", "given": 2}, {"caller": "张", "given": 2}]
    rows = json.loads(
        run("campaign", "contacts", str(run_id), "--format", "json", as_="李:sales").stdout
    )
    # The most promising first, shared in turn: 李 gets the 1st and 3rd.
    assert [(r["household"], r["score"], r["caller"]) for r in rows] == [
        ("OLD", 0.7, "李"),
        ("SIGNED", 0.5, "张"),
        ("NEW", 0.4, "李"),
        ("OWN", 0.2, "张"),
    ]
    assert {r["household"]: r["phone"] for r in rows} == {
        "OLD": PHONE,
        "SIGNED": "139****5678",
        "NEW": PHONE,
        "OWN": "139****5678",
    }
    mine = json.loads(
        run(
            "campaign", "contacts", str(run_id), "--mine", "--format", "json", as_="张:sales"
        ).stdout
    )
    assert [(r["household"], r["phone"]) for r in mine] == [("SIGNED", PHONE), ("OWN", PHONE)]
    others = json.loads(
        run("campaign", "contacts", str(run_id), "--format", "json", as_="赵:agent").stdout
    )
    assert {r["phone"] for r in others} == {"139****5678"}
    with app.session() as session:
        views = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "view_personal").order_by(AuditEntry.id)
        ).all()
    assert [(v.actor, "本人负责的联系人" in v.detail, v.detail.count(",") + 1) for v in views] == [
        ("李", True, 2),
        ("张", True, 2),
    ]
    # A page of the list reads (and puts on record) the phones of its own rows only.
    page = run(
        "campaign", "contacts", str(run_id), "--limit", "2", "--offset", "1", "--format", "json",
        as_="王:manager",
    )  # fmt: skip
    assert [r["household"] for r in json.loads(page.stdout)] == ["SIGNED", "NEW"]
    assert page.stderr.startswith("显示 2–3 条，共 4 条；其余请加 --offset 3")
    with app.session() as session:
        viewed = session.scalars(
            select(AuditEntry.detail)
            .where(AuditEntry.action == "view_personal", AuditEntry.actor == "王")
            .order_by(AuditEntry.id)
        ).all()
    assert [detail.split("；")[1].split("：")[0] for detail in viewed] == ["完整显示 2 人"]
    # Already assigned contacts keep their caller unless told to reassign.
    again = run("campaign", "assign", str(run_id), "孙", "--format", "json", as_="王:manager")
    assert json.loads(again.stdout) == [{"caller": "孙", "given": 0}]
    moved = run(
        "campaign", "assign", str(run_id), "孙", "--reassign", "--format", "json", as_="王:manager"
    )
    assert json.loads(moved.stdout) == [{"caller": "孙", "given": 4}]


def test_an_empty_list_says_which_rule_emptied_it_and_how_the_scores_look(app, planted, fake, run):
    fake.scores = {"refer": {"OLD": 0.14, "OWN": 0.05, "SIGNED": 0.09, "NEW": 0.02}}
    with app.session() as session, transaction(session):
        _campaign(session, min_propensity=0.3)
    with app.session() as session:
        result = run_campaign(session, "REF", now=NOW).as_dict()
    assert result["audience"] == 0
    assert result["why_empty"].startswith(
        "名单为空：“倾向（推荐新客）≥ 0.3”之后剩 0 户（之前 5 户）"
    )
    assert "最高 0.14" in result["why_empty"] and "--min-propensity" in result["why_empty"]
    with app.session() as session, transaction(session):
        _campaign(session, "GONE", projects=["阳光"], stages=["老业主"])
    table = run("campaign", "run", "GONE", as_="李:sales")
    assert "“阶段：老业主”之后剩 0 户（之前 3 户）" in table.output, table.output


def test_the_message_names_the_campaigns_project(app, planted, fake, run):
    # OLD bought in 翠湖 and later in 阳光: a 翠湖 campaign still speaks of 翠湖.
    with app.session() as session, transaction(session):
        old = session.scalar(select(Household).where(Household.code == "OLD"))
        building = session.scalar(select(Building).join(Project).where(Project.name == "阳光"))
        old.purchases.append(
            Purchase(
                contract_no="C-LATER",
                unit=Unit(building=building, code="9901"),
                purchase_date=dt.date(2025, 6, 1),
                amount=900_000,
            )
        )
        _campaign(session, "CUIHU", projects=["翠湖"])
        _campaign(session, "ALL")
    for code, project in (("CUIHU", "翠湖"), ("ALL", "阳光")):
        run_id = json.loads(
            run("campaign", "run", code, "--format", "json", as_="李:sales").stdout
        )["run"]
        rows = json.loads(
            run("campaign", "contacts", str(run_id), "--format", "json", as_="李:sales").stdout
        )
        old_row = next(r for r in rows if r["household"] == "OLD")
        assert old_row["message"] == f"OLD家您好，{project}老业主推荐有礼"
        assert old_row["project"] == project
