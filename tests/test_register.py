"""One service register: a household's tickets and its imported legacy records are one list,
and every view of the household's service — the tracking card's sections and counts, the
export, the KPIs, the analysis features, the campaign exclusions and the cost to serve — reads
them together and counts each request once. Work the system gives to staff (a coordination
task) is not in the register."""

from __future__ import annotations

import csv
import datetime as dt
import io

from sqlalchemy import func, select
from test_tickets import T0, make_world, minutes

from crm.core.card import build_card
from crm.core.chain import Feedback, Instruction, Plan
from crm.core.db import transaction
from crm.core.models import Household, ServiceRecord
from crm.plugins.analysis.features import household_features
from crm.plugins.campaigns.campaigns import open_complaint_households
from crm.plugins.satisfaction.kpis import kpi_report
from crm.plugins.service import tickets
from crm.plugins.service.tasks import carry_out_plans

NOW = T0 + dt.timedelta(hours=2)


def _section(card, title):
    return next(s for s in card.sections if s.title == title)


def build(session) -> dict:
    """H1: an imported open complaint and an imported closed repair (legacy records), an open
    complaint ticket (at investigation), a closed repair ticket, an enquiry ticket answered and
    closed, and a coordination task; H2 has nothing."""
    world = make_world(session, households=2)
    h1 = world["households"][0]
    unit = world["units"][0]
    with transaction(session):
        session.add_all(
            [
                ServiceRecord(
                    record_no="OLD-1", household_id=h1.id, unit_id=unit.id, kind="complaint",
                    channel="letter", status="open", opened_at=T0 - dt.timedelta(days=40),
                    summary="历史投诉：车位纠纷",
                ),
                ServiceRecord(
                    record_no="OLD-2", household_id=h1.id, kind="repair", channel="phone",
                    status="closed", opened_at=T0 - dt.timedelta(days=400),
                    closed_at=T0 - dt.timedelta(days=399), summary="历史报修：门锁",
                    result="已更换",
                ),
            ]
        )  # fmt: skip
        complaint = tickets.open_ticket(
            session, "H1", "complaint", "phone", "阳台进水", unit="1903", now=T0
        ).number
        tickets.step(session, complaint, "confirm", now=T0 + minutes(2))
        tickets.assess(
            session, complaint, "important", "engineering", ["fix_now"], now=T0 + minutes(4)
        )
        tickets.step(session, complaint, "investigate", now=T0 + minutes(6))
        enquiry = tickets.open_ticket(
            session, "H1", "enquiry", "online", "咨询物业费", now=T0 + minutes(10)
        ).number
        tickets.reply(session, enquiry, note="已答复缴费方式", now=T0 + minutes(15))
        tickets.close(session, enquiry, True, note="业主知悉", now=T0 + minutes(16))
        feedback = Feedback("1", h1.id, "满意度下降", 0.8, "satisfaction.satisfaction_drop")
        plan = Plan("电话回访", 30.0, 100.0, "回访", team="customer_service", task="call")
        carry_out_plans(session, [Instruction(1, feedback, plan)], now=T0 + minutes(20))
    return {"complaint": complaint, "enquiry": enquiry, "h1": h1.id}


def test_every_view_reads_one_register_and_counts_each_request_once(
    app, session, run, time_machine
):
    made = build(session)
    time_machine.move_to(NOW, tick=True)  # the card counts the last twelve months from now
    # The register: two legacy records and the two tickets, not the task.
    numbers = set(
        session.scalars(
            select(ServiceRecord.record_no).where(ServiceRecord.household_id == made["h1"])
        )
    )
    assert numbers == {"OLD-1", "OLD-2", made["complaint"], made["enquiry"]}

    # The tracking card: the open ones, a ticket with its step, due time and owner.
    with app.session() as fresh:
        card = build_card(fresh, "H1")
    open_rows = {row["登记号"]: row for row in _section(card, "处理中的服务记录").rows}
    assert set(open_rows) == {"OLD-1", made["complaint"]}
    ticket_row = open_rows[made["complaint"]]
    assert ticket_row["当前步骤"] == "调查" and ticket_row["时限"] is not None
    assert ticket_row["负责人"] == "张技术"
    assert open_rows["OLD-1"]["当前步骤"] is None  # a legacy record has no live step
    past = {row["登记号"] for row in _section(card, "历史服务记录").rows}
    assert past == {"OLD-2", made["enquiry"]}
    overview = dict(_section(card, "服务概况").lines)
    assert overview["处理中的记录"] == "投诉 2"
    assert overview["处理中合计"] == 2
    assert overview["近 12 个月投诉"] == 2

    # The export: the same four, once each.
    exported = run("export", "service", "--headers", "en")
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert sorted(r["record_no"] for r in rows) == sorted(numbers)
    by_no = {r["record_no"]: r for r in rows}
    assert by_no[made["enquiry"]]["kind"] == "enquiry"
    assert by_no[made["enquiry"]]["status"] == "closed"
    assert by_no[made["enquiry"]]["result"] == "业主知悉"

    # KPIs: four requests in the project, one of them legacy open, one legacy closed.
    [project_row] = [r for r in kpi_report(session, "project") if r["label"] == "四季花城"]
    assert (project_row["tickets"], project_row["legacy"], project_row["closed"]) == (4, 2, 2)
    assert project_row["closure_rate"] == 0.5

    # Analysis features and campaigns: two complaints, the household has one open.
    features = household_features(session, NOW.date() + dt.timedelta(days=1))
    index = list(features.household_ids).index(made["h1"])
    assert features.column("complaints")[index] == 2
    assert open_complaint_households(session) == {made["h1"]}


def test_an_import_never_changes_a_tickets_entry_and_reimporting_the_export_changes_nothing(
    app, session, run, tmp_path
):
    made = build(session)
    out = tmp_path / "service.csv"
    assert run("export", "service", "--headers", "en", "-o", str(out)).exit_code == 0
    again = run("import", "service", str(out))
    assert again.exit_code == 0, again.output
    assert "新增 0，更新 0，未变 4，拒绝 0" in again.stderr

    edited = out.read_text(encoding="utf-8-sig").replace("阳台进水", "阳台进水（已改）")
    changed = tmp_path / "changed.csv"
    changed.write_text(edited, encoding="utf-8")
    refused = run("import", "service", str(changed))
    assert "更新 0，未变 3，拒绝 1" in refused.stderr, refused.stderr
    rejects = (tmp_path / "changed.csv.rejects.csv").read_text(encoding="utf-8-sig")
    assert made["complaint"] in rejects and "导入不能修改" in rejects
    with app.session() as fresh:
        summary = fresh.scalar(
            select(ServiceRecord.summary).where(ServiceRecord.record_no == made["complaint"])
        )
    assert summary == "阳台进水"


def test_the_register_follows_the_ticket_through_its_steps(session):
    made = build(session)
    number = made["complaint"]

    def entry():
        return session.execute(
            select(ServiceRecord.status, ServiceRecord.closed_at, ServiceRecord.result).where(
                ServiceRecord.record_no == number
            )
        ).one()

    assert tuple(entry()) == ("open", None, None)
    with transaction(session):
        tickets.reply(
            session, number, what="修好阳台", due_at=T0 + dt.timedelta(days=1),
            promised_by="张技术", now=T0 + minutes(30),
        )  # fmt: skip
        tickets.close(session, number, True, note="已修好，业主确认", now=T0 + minutes(40))
    assert tuple(entry()) == ("closed", T0 + minutes(40), "已修好，业主确认")
    with transaction(session):
        tickets.revisit(session, number, 1, reopen_ticket=True, now=T0 + minutes(50))
    assert tuple(entry())[:2] == ("open", None)
    # One entry per ticket, however often it moved.
    assert (
        session.scalar(
            select(func.count()).select_from(ServiceRecord).where(ServiceRecord.record_no == number)
        )
        == 1
    )
    assert session.scalar(select(Household.id).where(Household.code == "H1")) == made["h1"]
