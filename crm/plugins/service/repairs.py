"""Repairs (报修): warranty check by item and handover date, the fee stated before the work,
the fee signed by the customer on completion, and the mandatory revisit.

The repair actions move the ticket through its flow (rules.py): the warranty check is the
first response and the assessment (the item decides the team); dispatching the repair job
starts the work; the last job done (fee signed for paid work) closes the ticket and brings
the phone revisit, whose answers go to satisfaction monitoring.

Warranty periods are the statutory minimums, counted from the handover (交房) date:
《房屋建筑工程质量保修办法》(建设部令第 80 号) article 7 for structure, waterproofing,
heating/cooling, electrical, plumbing, equipment and decoration; 《商品住宅实行住宅质量保证书和
住宅使用说明书制度的规定》 for the parts the 住宅质量保证书 lists (fittings, sanitary ware,
plaster, floors, lamps and switches, drain blockage). Intercoms fall under "other parts" agreed
by the developer: one year here. A database may lengthen a period with a setting
(`crm repair period`); a repeat failure of the same item within REWORK_WINDOW of a finished
repair is a free rework (返修) linked to the first ticket.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from crm.core.audit import current_user
from crm.core.clock import add_months, to_local
from crm.core.errors import CrmError
from crm.core.models import Purchase, Setting, Unit
from crm.plugins.service.dispatch import complete_work_order, create_work_order
from crm.plugins.service.models import Ticket, WorkOrder
from crm.plugins.service.rules import PAUSED
from crm.plugins.service.tickets import get_ticket, happened, record_event, transition

# The workmanship guarantee of a finished repair: the same item failing again within this
# time is the repair's fault, not the customer's (the intercom case, 002).
REWORK_WINDOW = dt.timedelta(days=90)
SETTING_PREFIX = "service.warranty_months."


@dataclass(frozen=True)
class WarrantyItem:
    code: str
    label: str
    months: int
    basis: str


_ART7 = "《房屋建筑工程质量保修办法》第七条"
_CERT = "《住宅质量保证书》规定"
WARRANTY_ITEMS = {
    item.code: item
    for item in (
        WarrantyItem("structure", "地基基础和主体结构", 600, f"{_ART7}：设计合理使用年限（50 年）"),
        WarrantyItem("waterproofing", "防水防渗漏", 60, f"{_ART7}：屋面、卫生间、外墙防渗漏 5 年"),
        WarrantyItem("heating_cooling", "供热与供冷系统", 24, f"{_ART7}：两个采暖期、供冷期"),
        WarrantyItem("electrical", "电气管线", 24, f"{_ART7}：电气管线 2 年"),
        WarrantyItem("plumbing", "给排水管道", 24, f"{_ART7}：给排水管道 2 年"),
        WarrantyItem("equipment", "设备安装", 24, f"{_ART7}：设备安装 2 年"),
        WarrantyItem("decoration", "装修工程", 24, f"{_ART7}：装修工程 2 年"),
        WarrantyItem("intercom", "楼宇对讲", 12, "其他部位由开发企业约定：1 年"),
        WarrantyItem("fittings", "门窗及五金件", 12, f"{_CERT}：门窗翘裂、五金件损坏 1 年"),
        WarrantyItem("sanitary_ware", "卫生洁具", 12, f"{_CERT}：卫生洁具 1 年"),
        WarrantyItem("plaster", "墙面顶棚抹灰", 12, f"{_CERT}：抹灰层脱落 1 年"),
        WarrantyItem("flooring", "地面空鼓开裂", 12, f"{_CERT}：地面空鼓开裂、起砂 1 年"),
        WarrantyItem("lamps_switches", "灯具电器开关", 6, f"{_CERT}：灯具、电器开关 6 个月"),
        WarrantyItem("drain_blockage", "管道堵塞", 2, f"{_CERT}：管道堵塞 2 个月"),
        WarrantyItem("home_service", "居家服务", 0, "不属保修范围（拆装家具等），按居家服务收费"),
    )
}


def item_code(text: str) -> str:
    text = text.strip()
    for item in WARRANTY_ITEMS.values():
        if text in (item.code, item.label):
            return item.code
    choices = "、".join(f"{i.code}（{i.label}）" for i in WARRANTY_ITEMS.values())
    raise CrmError(f"不认识的维修项目“{text}”：可选 {choices}。")


def warranty_months(session: Session, code: str) -> int:
    stored = session.get(Setting, SETTING_PREFIX + code)
    return int(stored.value) if stored is not None else WARRANTY_ITEMS[code].months


def list_items(session: Session) -> list[dict]:
    return [
        {
            "code": item.code,
            "label": item.label,
            "months": warranty_months(session, item.code),
            "statutory_months": item.months,
            "basis": item.basis,
        }
        for item in WARRANTY_ITEMS.values()
    ]


def set_warranty_months(session: Session, item: str, months: int) -> int:
    """Lengthen an item's warranty for this database; never below the statutory minimum."""
    current_user(session).require("service.configure", "修改保修期")
    code = item_code(item)
    minimum = WARRANTY_ITEMS[code].months
    if months < minimum:
        raise CrmError(
            f"{WARRANTY_ITEMS[code].label}的保修期不能短于法定最低 {minimum} 个月"
            f"（{WARRANTY_ITEMS[code].basis}）。"
        )
    stored = session.get(Setting, SETTING_PREFIX + code)
    if stored is None:
        session.add(Setting(key=SETTING_PREFIX + code, value=str(months)))
    else:
        stored.value = str(months)
    session.flush()
    return months


def handover_date(session: Session, ticket: Ticket) -> dt.date | None:
    """The first handover of the ticket's unit, or of the household's only handed-over unit."""
    query = select(Purchase.unit_id, func.min(Purchase.handover_date)).where(
        Purchase.handover_date.is_not(None)
    )
    if ticket.unit_id is not None:
        query = query.where(Purchase.unit_id == ticket.unit_id)
    else:
        query = query.where(Purchase.household_id == ticket.household_id)
    rows = session.execute(query.group_by(Purchase.unit_id)).all()
    if len(rows) > 1:
        codes = session.scalars(
            select(Unit.code).where(Unit.id.in_([unit for unit, _ in rows if unit]))
        ).all()
        raise CrmError(
            f"{ticket.number} 没有登记房号，而该户有多套已交房单位（{'、'.join(codes)}）："
            "请在报修单上登记房号后再判断保修。"
        )
    return rows[0][1] if rows else None


def _earlier_repair(session: Session, ticket: Ticket, code: str, now: dt.datetime):
    """The latest finished repair of the same item for this household within the rework
    window before this report, if any: (ticket number, ticket id, completed at)."""
    query = (
        select(Ticket.number, Ticket.id, WorkOrder.completed_at)
        .join(WorkOrder, WorkOrder.ticket_id == Ticket.id)
        .where(
            Ticket.id != ticket.id,
            Ticket.household_id == ticket.household_id,
            Ticket.repair_item == code,
            WorkOrder.kind == "repair",
            WorkOrder.status == "done",
            WorkOrder.completed_at >= ticket.opened_at - REWORK_WINDOW,
            WorkOrder.completed_at <= now,
        )
        .order_by(WorkOrder.completed_at.desc())
        .limit(1)
    )
    if ticket.unit_id is not None:
        query = query.where(or_(Ticket.unit_id == ticket.unit_id, Ticket.unit_id.is_(None)))
    return session.execute(query).first()


def _repair_started(session: Session, ticket: Ticket) -> bool:
    return bool(
        session.scalar(
            select(func.count(WorkOrder.id)).where(
                WorkOrder.ticket_id == ticket.id,
                WorkOrder.kind == "repair",
                WorkOrder.status.in_(("open", "done")),
            )
        )
    )


def _repair_ticket(session: Session, number: str) -> Ticket:
    ticket = get_ticket(session, number)
    if ticket.ticket_type != "repair":
        raise CrmError(f"{ticket.number} 不是报修单：保修判断与收费只用于报修。")
    return ticket


def check_warranty(
    session: Session,
    number: str,
    item: str,
    chargeable_reason: str | None = None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> dict:
    """Decide free or paid before any work: a rework of a recent repair is free; otherwise
    in warranty (report date before handover + the item's period) is free, unless the damage
    is the customer's own (`chargeable_reason`, e.g. 人为损坏). The first check is the ticket's
    first response and its assessment: it goes to the team that handles the item."""
    from crm.plugins.service import dispatch

    current_user(session).require("ticket.handle", "做保修判断")
    ticket = _repair_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    if _repair_started(session, ticket):
        raise CrmError(f"{ticket.number} 已经派出维修，保修判断不能再改。")
    if ticket.status == PAUSED:
        raise CrmError(
            f"{ticket.number} 正在等待客户：请先恢复处理（crm ticket step {ticket.number} resume）。"
        )
    code = item_code(item)
    months = warranty_months(session, code)
    reported = to_local(ticket.opened_at).date()
    earlier = _earlier_repair(session, ticket, code, at)
    handover = handover_date(session, ticket)
    until = add_months(handover, months) if handover else None
    chargeable = (chargeable_reason or "").strip()
    in_warranty: bool | None
    if earlier is not None:
        in_warranty = True
        reason = f"返修：{earlier.number} 于 {to_local(earlier.completed_at):%Y-%m-%d} 修过同一项目"
    elif months == 0:
        in_warranty = False
        reason = f"{WARRANTY_ITEMS[code].label}不属保修范围"
    elif handover is None and chargeable:
        # The customer's own damage is paid whatever the warranty says.
        in_warranty = None
        reason = "未登记交房日期，保修期未判断"
    elif handover is None:
        raise CrmError(
            f"找不到 {ticket.number} 对应单位的交房日期，无法判断是否在保修期内："
            "请先在购买记录中补充交房日期。"
        )
    else:
        in_warranty = reported < until
        reason = (
            f"交房 {handover}，{WARRANTY_ITEMS[code].label}保修 {months} 个月至 {until}，"
            f"报修日 {reported}{'在' if in_warranty else '已过'}保修期"
        )
    paid = not in_warranty
    if chargeable:
        paid = True
        reason += f"；属{chargeable}，不在保修责任内"
    ticket.repair_item = code
    ticket.in_warranty = in_warranty
    ticket.paid = paid
    ticket.warranty_until = until
    ticket.rework_of_id = earlier.id if earlier is not None else None
    if not paid:
        ticket.fee_rate = None
        ticket.fee_stated_at = None
    verdict = "收费维修：开工前须说明收费标准" if paid else "免费维修"
    if ticket.status == "accepted":
        ticket.category = ticket.category or (
            "service" if code == "home_service" else "engineering"
        )
        transition(session, ticket, "assess", at, f"保修判断：{reason}。{verdict}。", now)
        dispatch.assign_ticket(session, ticket, at)
    else:
        record_event(session, ticket, "warranty_check", f"{reason}。{verdict}。", at, now)
    session.flush()
    return repair_status(session, ticket) | {"reason": reason}


def quote_repair(
    session: Session,
    number: str,
    rate: str,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> dict:
    """State the fee rate to the customer before the work (材料费、人工费标准)."""
    current_user(session).require("ticket.handle", "登记收费标准")
    ticket = _repair_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    if ticket.paid is None:
        raise CrmError(f"{ticket.number} 还没有做保修判断：请先运行 crm repair check。")
    if not ticket.paid:
        raise CrmError(f"{ticket.number} 是免费维修（保修期内或返修），不需要报价。")
    if _repair_started(session, ticket):
        raise CrmError(f"{ticket.number} 已经开工，收费标准不能再改；如有变化请与业主另行协商。")
    if not rate.strip():
        raise CrmError("请写明收费标准，如“材料费 30 元/个，人工费 20 元/次”。")
    ticket.fee_rate = rate.strip()
    ticket.fee_stated_at = at
    record_event(
        session, ticket, "fee_stated", f"开工前告知业主收费标准：{ticket.fee_rate}", at, now
    )
    session.flush()
    return repair_status(session, ticket)


def start_repair(
    session: Session,
    number: str,
    team_code: str | None = None,
    assignee_name: str | None = None,
    due_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
    skill: str | None = None,
) -> WorkOrder:
    """Dispatch the repair work order (the ticket goes into the work) to someone with the
    skill it needs, when named; refused while free-or-paid is undecided or a paid job has no
    stated rate."""
    ticket = _repair_ticket(session, number)
    label = WARRANTY_ITEMS[ticket.repair_item].label if ticket.repair_item else "维修"
    terms = f"收费：{ticket.fee_rate}" if ticket.paid else "免费"
    if ticket.rework_of_id:
        terms += "（返修）"
    return create_work_order(
        session,
        ticket,
        "repair",
        f"{label}：{ticket.summary}（{terms}）",
        due_at=due_at,
        team_code=team_code,
        assignee_name=assignee_name,
        now=now,
        at=at,
        skill=skill,
    )


def amount_of(value: Decimal | str | float | None) -> Decimal | None:
    """A fee or a cost as typed (50, 50.00) in yuan with two decimals; never negative."""
    if value is None:
        return None
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise CrmError(f"看不懂金额“{value}”：请写数字，如 50 或 50.00。") from None
    if amount < 0:
        raise CrmError("费用不能为负数。")
    return amount


def complete_repair(
    session: Session,
    number: str,
    result: str,
    fee_amount: Decimal | str | float | None = None,
    signed_by: str | None = None,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> dict:
    """Finish the repair: a paid job needs the amount and the customer's signature on the
    fee record; a free one takes no fee. Closes the ticket and brings the revisit work order
    due within 24 hours (dispatch.complete_work_order)."""
    current_user(session).require("ticket.handle", "完成维修")
    ticket = _repair_ticket(session, number)
    now, at = happened(session, ticket, now, at)
    open_orders = session.scalars(
        select(WorkOrder)
        .where(
            WorkOrder.ticket_id == ticket.id,
            WorkOrder.kind == "repair",
            WorkOrder.status == "open",
        )
        # Forwarded work first: a supervisor's order closes after the job it passed on.
        .order_by(WorkOrder.id.desc())
    ).all()
    if not open_orders:
        raise CrmError(f"{ticket.number} 没有处理中的维修派工单：请先用 crm repair start 派工。")
    amount = amount_of(fee_amount)
    if ticket.paid:
        if amount is None or not (signed_by and signed_by.strip()):
            raise CrmError(
                f"{ticket.number} 是收费维修：完工须登记费用（--fee）并由业主在收费记录上签字"
                "（--signed-by 签字人）。"
            )
        ticket.fee_amount = amount
        ticket.fee_signed_off = True
        ticket.fee_signed_by = signed_by.strip()
        ticket.fee_signed_at = at
        record_event(
            session,
            ticket,
            "fee_signed",
            f"收费 {amount} 元（标准：{ticket.fee_rate}），业主 {ticket.fee_signed_by} 签字确认",
            at,
            now,
        )
    elif amount:
        raise CrmError(f"{ticket.number} 是免费维修（保修期内或返修），不能收取费用。")
    session.flush()
    for order in open_orders:
        complete_work_order(session, order.number, result, now=now, at=at)
    return repair_status(session, ticket)


def repair_status(session: Session, ticket: Ticket) -> dict:
    orders = session.scalars(
        select(WorkOrder).where(WorkOrder.ticket_id == ticket.id).order_by(WorkOrder.id)
    ).all()
    rework_of = session.get(Ticket, ticket.rework_of_id) if ticket.rework_of_id else None
    revisit = next((o for o in orders if o.kind == "revisit" and o.status == "open"), None)
    item = WARRANTY_ITEMS.get(ticket.repair_item or "")
    return {
        "ticket": ticket.number,
        "item": ticket.repair_item,
        "item_label": item.label if item else None,
        "warranty_until": ticket.warranty_until,
        "in_warranty": ticket.in_warranty,
        "paid": ticket.paid,
        "rework_of": rework_of.number if rework_of else None,
        "fee_rate": ticket.fee_rate,
        "fee_stated_at": ticket.fee_stated_at,
        "fee_amount": ticket.fee_amount,
        "fee_signed_by": ticket.fee_signed_by,
        "fee_signed_at": ticket.fee_signed_at,
        "work_orders": [o.number for o in orders],
        "revisit": revisit.number if revisit else None,
        "revisit_due_at": revisit.due_at if revisit else None,
    }
