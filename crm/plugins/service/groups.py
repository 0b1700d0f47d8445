"""Group complaints (群诉): several households hit by the same problem, handled as one case.

Detection (`detect_group_complaints`, run by `crm ticket check` and the scheduler) looks at the
customers' complaints opened within `service.group_window_days` (default 7) that are in no
group and were never taken out of one by staff. Complaints are alike when their texts name the
same problem: each text is cut to the problem it states (the caller's opening such as
“业主来电反映：”, flat numbers and the clauses that only say what the owner wants or what it
led to — 要求赔偿, 希望尽快处理, 已在业主群发视频 … — are left out, since those fit any problem),
turned into character pairs weighted by how rare they are among the last year's complaints, and
compared by cosine similarity. The four broad categories play no part: a noise complaint and an
intercom fee dispute are both 服务 and still two problems.

- A complaint joins the open group of its project (of its building, for a building's group)
  whose tickets it resembles on average by `SIMILAR` or more, when the group's latest ticket is
  within the window.
- The rest are clustered per project by average linkage (two clusters merge while their mean
  similarity is at least `SIMILAR`); a cluster from `service.group_min_households` (default 3)
  or more households is a new group: of its building when all are in one building, else of the
  project (an area such as the garage or the land outside the red line).

A group is led by the general manager (总经理, the first person responsible; a manager when the
centre has none) with an emergency group (应急小组) of the leader and the project's responsible
manager, starts in the 萌发期 when detected (staff may open one in the 潜伏期 before complaints
come) and carries the plan of a major complaint as a checklist with due times (PLAN). Staff link
and unlink tickets, merge and split groups, move the phase, change the leader and close the
group once every step of the plan is done. Everything is written to the group's events and the
audit log; linking a ticket escalates it to the leader.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import weakref
from collections import Counter

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from crm.core.audit import current_user, record
from crm.core.clock import to_local
from crm.core.errors import CrmError, NotFound
from crm.core.households import project_id as find_project
from crm.core.models import Building, Project, Setting, utcnow
from crm.core.paging import Page, between, fetch
from crm.plugins.service.models import (
    GroupComplaint,
    GroupEvent,
    GroupMember,
    GroupStep,
    ProjectManager,
    Staff,
    Ticket,
    TicketEvent,
)
from crm.plugins.service.rules import (
    CUSTOMER,
    GROUP_PHASES,
    GROUP_PREFIX,
    GROUP_STATUS,
    LEVELS,
    MANAGER,
    TOP,
    number,
    number_head,
)

DEFAULT_MIN_HOUSEHOLDS = 3
DEFAULT_WINDOW_DAYS = 7
MIN_HOUSEHOLDS_KEY = "service.group_min_households"
WINDOW_DAYS_KEY = "service.group_window_days"
# Mean similarity of two complaints' problems from which they count as the same problem.
SIMILAR = 0.2
# Complaints the rarity of the words is measured on: the last year's, at most this many.
CORPUS_DAYS, CORPUS_LIMIT, CORPUS_LEAST = 365, 5000, 200

# The plan of a major (group) complaint [000], step by step, with hours after detection.
PLAN = (
    ("emergency_group", "成立重大投诉应急小组，总经理为第一负责人", 2),
    ("key_issues", "抓住关键问题、部门与人员（调查）", 24),
    ("foresee", "预估可能出现的情况", 24),
    ("solution", "寻找解决方案，制定现场应对措施", 48),
    ("communication", "沟通和信息传递：统一口径，书面回复业主", 72),
    ("brand", "媒体、品牌和企业形象管理", 72),
    ("command", "群诉发生后的指挥、协调和控制", 7 * 24),
    ("recovery", "恢复重大投诉的影响：跟踪回访各户", 30 * 24),
)
STEPS = {code: label for code, label, _hours in PLAN}
STATUS = GROUP_STATUS

# --- what a complaint is about ------------------------------------------------------------------

_HAN = re.compile(r"[\u4e00-\u9fff]+")
_CLAUSES = re.compile(r"[，,。；;！!？?\n]+")
# Clauses that say what the owner wants, how loud it got or what it did to them: they fit any
# problem, so they never make two complaints alike (DOMAIN.md: what customers want; the signs
# of a hot or major complaint).
_NOT_THE_PROBLEM = re.compile(
    "要求|希望|请|麻烦|尽快|赔偿|补偿|退房|道歉|说法|造成|媒体|曝光|业主群|群里|联名|发帖|跟帖|转发|"
    "视频|多次反映|没人管|未解决|多位|十几户|摔伤|受伤|差点|安全隐患|影响正常生活|没法住人"
)


def problem_text(summary: str) -> list[str]:
    """The runs of Chinese text that state the problem (see the module's docstring)."""
    head, colon, rest = summary.partition("：")
    if colon and len(head) <= 10:  # 业主来电反映：… — who reports, not what
        summary = rest
    kept = [c for c in _CLAUSES.split(summary) if c.strip() and not _NOT_THE_PROBLEM.search(c)]
    if not kept:  # nothing but wishes: keep the whole text rather than nothing
        kept = [summary]
    return [run for clause in kept for run in _HAN.findall(clause)]


_FLAT = re.compile(r"[0-9]+[A-Za-z]?-[0-9]+[A-Za-z]?|[0-9]{3,4}\s*室")


def names_a_flat(summary: str) -> bool:
    """Whether the complaint places its problem in a flat (3-1203, 12-1A 室, 1903 室)."""
    return bool(_FLAT.search(summary))


def terms(summary: str) -> set[str]:
    """The character pairs of the problem's text."""
    return {run[i : i + 2] for run in problem_text(summary) for i in range(len(run) - 1)}


class Similarity:
    """Cosine similarity of problems, words weighted by their rarity in `corpus` (inverse
    document frequency, capped)."""

    def __init__(self, corpus: list[str]):
        self.total = len(corpus)
        self.counts: Counter[str] = Counter()
        for text in corpus:
            self.counts.update(terms(text))
        self._vectors: dict[str, tuple[dict[str, float], float]] = {}
        # Words rarer than 1 in 100 complaints weigh alike: otherwise a word only one owner
        # happened to use would outweigh the words two owners share about the same problem.
        self.cap = self.rarity(max(1.0, max(self.total, CORPUS_LEAST) / 100))

    def rarity(self, count: float) -> float:
        # A young database's few complaints cannot tell a common word from a rare one: counted
        # against at least CORPUS_LEAST complaints, every word of theirs weighs nearly alike.
        return math.log((max(self.total, CORPUS_LEAST) + 1) / (count + 1)) + 1

    def vector(self, text: str) -> tuple[dict[str, float], float]:
        found = self._vectors.get(text)
        if found is None:
            weights = {t: min(self.rarity(self.counts.get(t, 0)), self.cap) for t in terms(text)}
            found = (weights, math.sqrt(sum(w * w for w in weights.values())))
            self._vectors[text] = found
        return found

    def __call__(self, a: str, b: str) -> float:
        (va, na), (vb, nb) = self.vector(a), self.vector(b)
        if not na or not nb:
            return 0.0
        if len(vb) < len(va):
            va, vb = vb, va
        return sum(w * vb[t] for t, w in va.items() if t in vb) / (na * nb)


def clusters(texts: list[str], similar: Similarity, least: float = SIMILAR) -> list[list[int]]:
    """Average-linkage clusters of `texts` (indexes): two clusters merge while the mean
    similarity of their members is at least `least`. Unlike joining every similar pair, a
    chain of pairs that each share a little never makes one cluster of unrelated problems."""
    groups = [[i] for i in range(len(texts))]
    mean = {
        (a, b): similar(texts[a], texts[b])
        for a in range(len(texts))
        for b in range(a + 1, len(texts))
    }
    alive = set(range(len(texts)))
    while True:
        best, pair = least, None
        for (a, b), value in mean.items():
            if a in alive and b in alive and value >= best:
                best, pair = value, (a, b)
        if pair is None:
            return [groups[i] for i in sorted(alive)]
        a, b = pair
        for c in alive - {a, b}:
            ac, bc = mean[min(a, c), max(a, c)], mean[min(b, c), max(b, c)]
            size = len(groups[a]) + len(groups[b])
            mean[min(a, c), max(a, c)] = (len(groups[a]) * ac + len(groups[b]) * bc) / size
        groups[a] += groups[b]
        alive.discard(b)


# --- settings, lookups ---------------------------------------------------------------------------


def _int_setting(session: Session, key: str, default: int) -> int:
    text = session.scalar(select(Setting.value).where(Setting.key == key))
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise CrmError(f"设置 {key}={text!r} 须是正整数。")
    return value


def get_group(session: Session, code: str) -> GroupComplaint:
    group = session.scalar(select(GroupComplaint).where(GroupComplaint.number == code.strip()))
    if group is None:
        raise NotFound(f"找不到群诉“{code}”：请用 crm ticket groups 查看群诉编号。")
    return group


def _open(group: GroupComplaint, doing: str) -> None:
    if group.status != "open":
        raise CrmError(
            f"群诉 {group.number} {STATUS[group.status]}，不能再{doing}："
            "请用 crm ticket groups 查看处理中的群诉。"
        )


def _staff(session: Session, name: str) -> Staff:
    from crm.plugins.service.dispatch import get_staff

    return get_staff(session, name)


def _phase(text: str) -> str:
    for code, label in GROUP_PHASES.items():
        if text.strip() in (code, label, label.removesuffix("期")):
            return code
    choices = "、".join(f"{code}（{label}）" for code, label in GROUP_PHASES.items())
    raise CrmError(f"不认识的群诉阶段“{text}”：可用 {choices}。")


def _tickets(session: Session, numbers: list[str]) -> list[Ticket]:
    from crm.plugins.service.tickets import get_ticket

    if not numbers:
        raise CrmError("请至少给出一张工单的登记号。")
    return [get_ticket(session, n) for n in dict.fromkeys(numbers)]


def _log(session, group, action, note, now, ticket_id=None, actor=None) -> None:
    session.add(
        GroupEvent(
            group_id=group.id,
            ticket_id=ticket_id,
            at=now,
            actor=actor or current_user(session).name,
            action=action,
            note=note,
        )
    )


def _leader(session: Session) -> Staff | None:
    """The general manager: the first person responsible [000]; a manager when there is none."""
    from crm.plugins.service.escalation import pick_staff

    return pick_staff(session, TOP, None) or pick_staff(session, MANAGER, None)


def _next_number(session: Session, now: dt.datetime) -> str:
    head = number_head(GROUP_PREFIX, now)
    last = session.scalar(
        select(func.max(GroupComplaint.number)).where(GroupComplaint.number.like(f"{head}%"))
    )
    return number(head, int(last.rsplit("-", 1)[1]) + 1 if last else 1)


def _refresh(session: Session, group: GroupComplaint) -> None:
    """Households and the most frequent category, from the tickets linked now."""
    session.flush()
    group.households = session.scalar(
        select(func.count(func.distinct(Ticket.household_id))).where(Ticket.group_id == group.id)
    )
    categories = Counter(
        session.scalars(
            select(Ticket.category).where(Ticket.group_id == group.id, Ticket.category.is_not(None))
        )
    )
    if categories:
        group.category = categories.most_common(1)[0][0]


# --- a new group, its plan and its emergency group -----------------------------------------------


def start_plan(session: Session, group: GroupComplaint, now: dt.datetime) -> list[GroupStep]:
    """The emergency group (the leader and the project's responsible manager) and the plan's
    steps, due counted from `now`."""
    members = [group.owner_id] if group.owner_id else []
    if group.project_id is not None:
        manager = session.scalar(
            select(ProjectManager.staff_id).where(ProjectManager.project_id == group.project_id)
        )
        if manager is not None and manager not in members:
            members.append(manager)
    session.add_all(GroupMember(group_id=group.id, staff_id=m) for m in members)
    steps = [
        GroupStep(
            group_id=group.id,
            step=code,
            position=position,
            due_at=now + dt.timedelta(hours=hours),
        )
        for position, (code, _label, hours) in enumerate(PLAN, 1)
    ]
    session.add_all(steps)
    return steps


def new_group(
    session: Session,
    project_id: int | None,
    building_id: int | None,
    topic: str,
    now: dt.datetime,
    phase: str = "emerging",
    action: str = "detect",
    leader: Staff | None = None,
) -> GroupComplaint:
    """A group with its leader, emergency group and plan (no tickets yet)."""
    leader = leader or _leader(session)
    group = GroupComplaint(
        number=_next_number(session, now),
        project_id=project_id,
        building_id=building_id,
        topic=topic[:200],
        phase=phase,
        owner_id=leader.id if leader else None,
        status="open",
        detected_at=now,
        households=0,
    )
    session.add(group)
    session.flush()
    start_plan(session, group, now)
    who = f"{LEVELS[leader.level]} {leader.name}" if leader else "未登记总经理或经理"
    _log(session, group, action, f"{topic[:60]}；第一负责人：{who}", now)
    record(
        session,
        f"group_{action}",
        "svc_group_complaints",
        group.id,
        changes={"number": group.number, "topic": group.topic, "phase": phase},
    )
    return group


def _link(
    session: Session, group: GroupComplaint, tickets: list, now: dt.datetime, note: str
) -> None:
    """Link tickets (Ticket objects or rows with id, number and team_id) to the group and
    escalate each to its leader."""
    from crm.plugins.service.escalation import _expire, _fire

    leader = session.get(Staff, group.owner_id) if group.owner_id else None
    actor = current_user(session).name
    t = Ticket.__table__
    for ticket in tickets:
        tid, team_id = ticket.id, ticket.team_id
        session.execute(
            update(t).where(t.c.id == tid).values(group_id=group.id, version=t.c.version + 1)
        )
        session.add(
            TicketEvent(
                ticket_id=tid,
                at=now,
                actor=actor,
                action="group",
                note=f"并入群诉 {group.number}",
            )
        )
        _log(session, group, "link", note, now, ticket_id=tid)
        if leader is not None:
            _fire(session, tid, team_id, "group", leader.level, now, f"群诉 {group.number}", leader)
    record(
        session,
        "group_link",
        "svc_group_complaints",
        group.id,
        changes={"tickets": [ticket.number for ticket in tickets]},
    )
    _expire(session)
    _refresh(session, group)


# --- detection ------------------------------------------------------------------------------------


def _unlinked_by_staff():
    return exists().where(GroupEvent.ticket_id == Ticket.id, GroupEvent.action == "unlink")


# Per engine (a new database, a new engine: never another database's words).
_CORPUS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _similarity(session: Session, now: dt.datetime) -> Similarity:
    """The weights of the last year's complaints, read again only when a complaint was added
    or the day changed (the periodic check runs every few minutes)."""
    complaint = [Ticket.ticket_type == "complaint", Ticket.origin == CUSTOMER]
    window = [Ticket.opened_at >= now - dt.timedelta(days=CORPUS_DAYS), Ticket.opened_at <= now]
    key = (
        to_local(now).date(),
        *session.execute(
            select(func.count(), func.max(Ticket.id)).where(*complaint, *window)
        ).one(),
    )
    bind = session.get_bind()
    where = getattr(bind, "engine", bind)
    cached = _CORPUS.get(where)
    if cached is not None and cached[0] == key:
        return cached[1]
    corpus = session.scalars(
        select(Ticket.summary)
        .where(*complaint, *window)
        .order_by(Ticket.opened_at.desc())
        .limit(CORPUS_LIMIT)
    ).all()
    _CORPUS[where] = (key, Similarity(corpus))
    return _CORPUS[where][1]


def _places(found: list) -> list[tuple[int | None, list]]:
    """Where a cluster of alike complaints is one problem: its building when all are in one;
    the project (an area: the garage, the land outside the red line) when they are in several
    and most do not place the problem in their own flat; else each building on its own (the
    same leak in flats of different buildings is one problem per building at most)."""
    buildings = {t.building_id for t in found}
    if len(buildings) == 1:
        return [(buildings.pop(), found)]
    if sum(names_a_flat(t.summary) for t in found) * 2 <= len(found):
        return [(None, found)]
    return [
        (b, [t for t in found if t.building_id == b])
        for b in sorted(buildings, key=lambda b: (b is None, b or 0))
        if b is not None
    ]


def detect_group_complaints(
    session: Session,
    now: dt.datetime | None = None,
    min_households: int | None = None,
    window_days: int | None = None,
) -> list[GroupComplaint]:
    """Find group complaints among the recent complaints (see the module's docstring).
    Returns the groups created or grown by this run."""
    now = now or utcnow()
    session.flush()
    least = min_households or _int_setting(session, MIN_HOUSEHOLDS_KEY, DEFAULT_MIN_HOUSEHOLDS)
    days = window_days or _int_setting(session, WINDOW_DAYS_KEY, DEFAULT_WINDOW_DAYS)
    since = now - dt.timedelta(days=days)
    complaint = [Ticket.ticket_type == "complaint", Ticket.origin == CUSTOMER]
    # Only the columns detection reads: the check runs every few minutes.
    fresh = session.execute(
        select(
            Ticket.id,
            Ticket.number,
            Ticket.team_id,
            Ticket.household_id,
            Ticket.project_id,
            Ticket.building_id,
            Ticket.summary,
            Ticket.opened_at,
        )
        .where(
            *complaint,
            Ticket.opened_at >= since,
            Ticket.opened_at <= now,
            Ticket.group_id.is_(None),
            Ticket.project_id.is_not(None),
            ~_unlinked_by_staff(),
        )
        .order_by(Ticket.opened_at, Ticket.id)
    ).all()
    projects = {t.project_id for t in fresh}
    groups = session.scalars(
        select(GroupComplaint)
        .where(
            GroupComplaint.status == "open",
            GroupComplaint.project_id.in_(projects),
            GroupComplaint.detected_at <= now,
        )
        .order_by(GroupComplaint.id)
    ).all()
    # Only a project with an open group or enough households complaining can gain a group:
    # the periodic check usually stops here, before reading the year's complaints.
    households: dict[int, set[int]] = {}
    for t in fresh:
        households.setdefault(t.project_id, set()).add(t.household_id)
    projects = {g.project_id for g in groups} | {
        p for p, found in households.items() if len(found) >= least
    }
    fresh = [t for t in fresh if t.project_id in projects]
    if not fresh:
        return []
    similar = _similarity(session, now)
    touched: dict[int, GroupComplaint] = {}
    members = {
        g.id: session.execute(
            select(Ticket.summary, Ticket.opened_at).where(Ticket.group_id == g.id)
        ).all()
        for g in groups
    }
    loose = []
    for ticket in fresh:
        best, chosen = SIMILAR, None
        for g in groups:
            rows = members[g.id]
            if g.project_id != ticket.project_id or not rows:
                continue
            if g.building_id is not None and g.building_id != ticket.building_id:
                continue
            if max(row.opened_at for row in rows) < ticket.opened_at - dt.timedelta(days=days):
                continue
            mean = sum(similar(ticket.summary, row.summary) for row in rows) / len(rows)
            if mean >= best:
                best, chosen = mean, g
        if chosen is None:
            loose.append(ticket)
            continue
        _link(session, chosen, [ticket], now, f"相似度 {best:.2f}")
        members[chosen.id].append(ticket)
        touched[chosen.id] = chosen
    for project in sorted(projects):
        mine = [t for t in loose if t.project_id == project]
        for indexes in clusters([t.summary for t in mine], similar):
            for building, found in _places([mine[i] for i in indexes]):
                if len({t.household_id for t in found}) < least:
                    continue
                group = new_group(session, project, building, found[0].summary, now)
                _link(session, group, found, now, f"{len(found)} 张相似投诉")
                touched[group.id] = group
    session.flush()
    return list(touched.values())


# --- staff's changes ------------------------------------------------------------------------------


def create_group(
    session: Session,
    project: str,
    topic: str,
    building: str | None = None,
    phase: str = "latent",
    tickets: list[str] | None = None,
    now: dt.datetime | None = None,
) -> GroupComplaint:
    """A group staff open themselves, e.g. in the 潜伏期 before the complaints come."""
    current_user(session).require("ticket.handle", "登记群诉")
    now = now or utcnow()
    if not topic.strip():
        raise CrmError("请用 --topic 写明群诉的共同问题。")
    pid = find_project(session, project)
    bid = None
    if building:
        bid = session.scalar(
            select(Building.id).where(Building.project_id == pid, Building.name == building.strip())
        )
        if bid is None:
            raise NotFound(f"项目“{project}”中没有楼栋“{building}”：请检查楼栋名称，如 3栋。")
    group = new_group(session, pid, bid, topic.strip(), now, _phase(phase), action="create")
    if tickets:
        link_tickets(session, group.number, tickets, now)
    return group


def link_tickets(
    session: Session, code: str, numbers: list[str], now: dt.datetime | None = None
) -> GroupComplaint:
    """Staff link complaints to a group (a ticket in another group must be unlinked first)."""
    current_user(session).require("ticket.handle", "把工单并入群诉")
    now = now or utcnow()
    group = get_group(session, code)
    _open(group, "并入工单")
    tickets = _tickets(session, numbers)
    for ticket in tickets:
        if ticket.group_id == group.id:
            raise CrmError(f"工单 {ticket.number} 已在群诉 {group.number} 中。")
        if ticket.group_id is not None:
            other = session.get(GroupComplaint, ticket.group_id)
            raise CrmError(
                f"工单 {ticket.number} 已在群诉 {other.number} 中：请先移出，或合并两起群诉。"
            )
        if ticket.project_id != group.project_id:
            raise CrmError(f"工单 {ticket.number} 不属于群诉 {group.number} 的项目，不能并入。")
    _link(session, group, tickets, now, "员工并入")
    return group


def unlink_tickets(
    session: Session, code: str, numbers: list[str], note: str, now: dt.datetime | None = None
) -> GroupComplaint:
    """Staff take tickets out of a group; detection never links them again on its own."""
    current_user(session).require("ticket.handle", "把工单移出群诉")
    now = now or utcnow()
    group = get_group(session, code)
    _open(group, "移出工单")
    if not note or not note.strip():
        raise CrmError("请用 --note 写明移出的原因，如“与本群诉不是同一问题”。")
    tickets = _tickets(session, numbers)
    actor = current_user(session).name
    for ticket in tickets:
        if ticket.group_id != group.id:
            raise CrmError(f"工单 {ticket.number} 不在群诉 {group.number} 中。")
        ticket.group_id = None
        session.add(
            TicketEvent(
                ticket_id=ticket.id,
                at=now,
                actor=actor,
                action="group",
                note=f"移出群诉 {group.number}：{note.strip()}",
            )
        )
        _log(session, group, "unlink", note.strip(), now, ticket_id=ticket.id)
    record(
        session,
        "group_unlink",
        "svc_group_complaints",
        group.id,
        changes={"tickets": [t.number for t in tickets], "note": note.strip()},
    )
    _refresh(session, group)
    return group


def merge_groups(
    session: Session, into: str, other: str, now: dt.datetime | None = None
) -> GroupComplaint:
    """Move every ticket of `other` into `into`; `other` is marked merged."""
    current_user(session).require("ticket.handle", "合并群诉")
    now = now or utcnow()
    keep, gone = get_group(session, into), get_group(session, other)
    if keep.id == gone.id:
        raise CrmError("不能把一起群诉合并到它自己。")
    _open(keep, "合并")
    _open(gone, "合并")
    if keep.project_id != gone.project_id:
        raise CrmError(f"群诉 {keep.number} 与 {gone.number} 不属于同一项目，不能合并。")
    moved = session.scalars(select(Ticket).where(Ticket.group_id == gone.id)).all()
    t = Ticket.__table__
    session.execute(
        update(t).where(t.c.group_id == gone.id).values(group_id=keep.id, version=t.c.version + 1)
    )
    if keep.building_id != gone.building_id:
        keep.building_id = None  # two buildings: the project's problem
    gone.status, gone.merged_into_id, gone.closed_at = "merged", keep.id, now
    _log(session, keep, "merge", f"并入群诉 {gone.number} 的 {len(moved)} 张工单", now)
    _log(session, gone, "merge", f"合并到群诉 {keep.number}", now)
    record(
        session,
        "group_merge",
        "svc_group_complaints",
        keep.id,
        changes={"from": gone.number, "tickets": [x.number for x in moved]},
    )
    from crm.plugins.service.escalation import _expire

    _expire(session)
    _refresh(session, keep)
    _refresh(session, gone)
    return keep


def split_group(
    session: Session, code: str, numbers: list[str], topic: str, now: dt.datetime | None = None
) -> GroupComplaint:
    """Move the given tickets of a group into a new group of their own (same leader)."""
    current_user(session).require("ticket.handle", "拆分群诉")
    now = now or utcnow()
    group = get_group(session, code)
    _open(group, "拆分")
    tickets = _tickets(session, numbers)
    for ticket in tickets:
        if ticket.group_id != group.id:
            raise CrmError(f"工单 {ticket.number} 不在群诉 {group.number} 中。")
    left = session.scalar(
        select(func.count(Ticket.id)).where(
            Ticket.group_id == group.id, Ticket.id.not_in([t.id for t in tickets])
        )
    )
    if not left:
        raise CrmError("拆分须留下至少一张工单：要整体调整，请更换负责人或阶段。")
    buildings = {t.building_id for t in tickets}
    leader = session.get(Staff, group.owner_id) if group.owner_id else None
    topic = (topic or "").strip() or tickets[0].summary
    new = new_group(
        session,
        group.project_id,
        buildings.pop() if len(buildings) == 1 else None,
        topic,
        now,
        phase=group.phase,
        action="split",
        leader=leader,
    )
    t = Ticket.__table__
    session.execute(
        update(t)
        .where(t.c.id.in_([x.id for x in tickets]))
        .values(group_id=new.id, version=t.c.version + 1)
    )
    for ticket in tickets:
        _log(session, new, "link", f"从群诉 {group.number} 拆出", now, ticket_id=ticket.id)
    _log(session, group, "split", f"{len(tickets)} 张工单拆分为群诉 {new.number}", now)
    from crm.plugins.service.escalation import _expire

    _expire(session)
    _refresh(session, group)
    _refresh(session, new)
    return new


def set_phase(
    session: Session, code: str, phase: str, note: str | None, now: dt.datetime | None = None
) -> GroupComplaint:
    """Move the group to another of the four phases (潜伏期, 萌发期, 爆发期, 灾难期)."""
    current_user(session).require("ticket.handle", "调整群诉阶段")
    now = now or utcnow()
    group = get_group(session, code)
    _open(group, "调整阶段")
    target = _phase(phase)
    if target == group.phase:
        raise CrmError(f"群诉 {group.number} 已处于{GROUP_PHASES[target]}。")
    before = group.phase
    group.phase = target
    text = f"{GROUP_PHASES[before]} → {GROUP_PHASES[target]}"
    _log(session, group, "phase", f"{text}：{note}" if note else text, now)
    return group


def set_leader(
    session: Session, code: str, staff: str, now: dt.datetime | None = None
) -> GroupComplaint:
    """Change the first person responsible (a manager's decision); the new leader joins the
    emergency group and takes the group's open tickets."""
    current_user(session).require("ticket.override", "更换群诉的第一负责人")
    now = now or utcnow()
    group = get_group(session, code)
    _open(group, "更换负责人")
    person = _staff(session, staff)
    if person.id == group.owner_id:
        raise CrmError(f"{person.name} 已是群诉 {group.number} 的第一负责人。")
    if person.level < MANAGER:
        raise CrmError(
            f"{person.name} 是{LEVELS[person.level]}：群诉的第一负责人须是经理或总经理。"
        )
    before = session.get(Staff, group.owner_id) if group.owner_id else None
    group.owner_id = person.id
    _add_member(session, group, person)
    _log(session, group, "lead", f"{before.name if before else '无'} → {person.name}", now)
    return group


def _add_member(session: Session, group: GroupComplaint, person: Staff) -> bool:
    found = session.scalar(
        select(GroupMember.id).where(
            GroupMember.group_id == group.id, GroupMember.staff_id == person.id
        )
    )
    if found is None:
        session.add(GroupMember(group_id=group.id, staff_id=person.id))
    return found is None


def add_member(
    session: Session, code: str, staff: str, now: dt.datetime | None = None
) -> GroupComplaint:
    """Add a person to the emergency group (应急小组)."""
    current_user(session).require("ticket.handle", "调整应急小组")
    now = now or utcnow()
    group = get_group(session, code)
    _open(group, "调整应急小组")
    person = _staff(session, staff)
    if not _add_member(session, group, person):
        raise CrmError(f"{person.name} 已在群诉 {group.number} 的应急小组中。")
    _log(session, group, "member", f"加入 {person.name}（{person.title}）", now)
    return group


def complete_step(
    session: Session,
    code: str,
    step: str,
    note: str,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
) -> GroupStep:
    """Mark a step of the plan done, with what was done."""
    current_user(session).require("ticket.handle", "登记群诉处理步骤")
    now = now or utcnow()
    at = at or now
    group = get_group(session, code)
    _open(group, "登记处理步骤")
    code_ = next((c for c, label in STEPS.items() if step.strip() in (c, label)), None)
    if code_ is None:
        choices = "、".join(f"{c}（{label}）" for c, label in STEPS.items())
        raise CrmError(f"不认识的处理步骤“{step}”：可用 {choices}。")
    if not note or not note.strip():
        raise CrmError("请用 --note 写明这一步做了什么。")
    if at > now:
        raise CrmError("完成时间不能晚于现在。")
    if at < group.detected_at:
        raise CrmError("完成时间不能早于群诉的发现时间。")
    row = session.scalar(
        select(GroupStep).where(GroupStep.group_id == group.id, GroupStep.step == code_)
    )
    if row.done_at is not None:
        raise CrmError(f"“{STEPS[code_]}”已于 {to_local(row.done_at):%Y-%m-%d %H:%M} 完成。")
    row.done_at, row.done_by, row.note = at, current_user(session).name, note.strip()
    _log(session, group, "step", f"{STEPS[code_]}：{note.strip()}", at)
    return row


def close_group(
    session: Session, code: str, result: str, now: dt.datetime | None = None
) -> GroupComplaint:
    """End a group once every step of its plan is done (the leader's decision)."""
    current_user(session).require("ticket.override", "结束群诉")
    now = now or utcnow()
    group = get_group(session, code)
    _open(group, "结束")
    if not result or not result.strip():
        raise CrmError("请用 --result 写明群诉的处理结果。")
    undone = session.scalars(
        select(GroupStep.step)
        .where(GroupStep.group_id == group.id, GroupStep.done_at.is_(None))
        .order_by(GroupStep.position)
    ).all()
    if undone:
        raise CrmError(
            f"群诉 {group.number} 还有未完成的处理步骤：{'、'.join(STEPS[s] for s in undone)}；"
            "请先用 crm ticket group step 登记。"
        )
    group.status, group.closed_at, group.result = "closed", now, result.strip()
    _log(session, group, "close", result.strip(), now)
    return group


# --- what staff read ------------------------------------------------------------------------------


def _place(session: Session, group: GroupComplaint) -> tuple[str | None, str]:
    project = session.get(Project, group.project_id) if group.project_id else None
    building = session.get(Building, group.building_id) if group.building_id else None
    return (project.name if project else None, building.name if building else "全项目")


def list_groups(
    session: Session,
    status: str | None = None,
    now: dt.datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Page:
    """Group complaints detected in [since, until), the newest first: one page of them, with
    how many."""
    now = now or utcnow()
    query = select(GroupComplaint, Staff.name).outerjoin(Staff, GroupComplaint.owner_id == Staff.id)
    query = query.where(*between(GroupComplaint.detected_at, since, until))
    if status:
        if status not in STATUS:
            raise CrmError(f"不认识的状态“{status}”：可用 {'、'.join(STATUS)}。")
        query = query.where(GroupComplaint.status == status)
    out = []
    found = fetch(session, query.order_by(GroupComplaint.id.desc()), limit, offset)
    for g, owner in found:
        project, building = _place(session, g)
        overdue = session.scalar(
            select(func.count(GroupStep.id)).where(
                GroupStep.group_id == g.id, GroupStep.done_at.is_(None), GroupStep.due_at < now
            )
        )
        out.append(
            {
                "number": g.number,
                "project": project,
                "building": building,
                "topic": g.topic,
                "category": g.category,
                "phase": g.phase,
                "status": g.status,
                "households": g.households,
                "owner": owner,
                "overdue_steps": overdue if g.status == "open" else 0,
                "detected_at": g.detected_at,
                "tickets": session.scalars(
                    select(Ticket.number).where(Ticket.group_id == g.id).order_by(Ticket.id)
                ).all(),
            }
        )
    return Page(out, found.total, offset, limit)


def plan(session: Session, code: str, now: dt.datetime | None = None) -> list[dict]:
    """The group's checklist: each step, its due time, when and by whom it was done."""
    now = now or utcnow()
    group = get_group(session, code)
    rows = session.scalars(
        select(GroupStep).where(GroupStep.group_id == group.id).order_by(GroupStep.position)
    ).all()
    return [
        {
            "position": row.position,
            "step": row.step,
            "label": STEPS.get(row.step, row.step),
            "due_at": row.due_at,
            "done_at": row.done_at,
            "done_by": row.done_by,
            "note": row.note,
            "overdue": row.done_at is None and row.due_at < now and group.status == "open",
        }
        for row in rows
    ]


def overdue_steps(session: Session, now: dt.datetime | None = None) -> list[dict]:
    """The steps of open groups past their due time and not done, the most overdue first."""
    now = now or utcnow()
    rows = session.execute(
        select(GroupComplaint, GroupStep, Staff.name)
        .join(GroupStep, GroupStep.group_id == GroupComplaint.id)
        .outerjoin(Staff, GroupComplaint.owner_id == Staff.id)
        .where(
            GroupComplaint.status == "open",
            GroupStep.done_at.is_(None),
            GroupStep.due_at < now,
        )
        .order_by(GroupStep.due_at, GroupComplaint.id)
    ).all()
    return [
        {
            "number": g.number,
            "step": step.step,
            "label": STEPS.get(step.step, step.step),
            "due_at": step.due_at,
            "hours_late": round((now - step.due_at).total_seconds() / 3600, 1),
            "owner": owner,
        }
        for g, step, owner in rows
    ]


def show_group(session: Session, code: str, now: dt.datetime | None = None) -> dict:
    """One group: place, topic, phase, leader, emergency group, plan, tickets and events."""
    now = now or utcnow()
    group = get_group(session, code)
    project, building = _place(session, group)
    leader = session.get(Staff, group.owner_id) if group.owner_id else None
    team = session.execute(
        select(Staff.name, Staff.title)
        .join(GroupMember, GroupMember.staff_id == Staff.id)
        .where(GroupMember.group_id == group.id)
        .order_by(Staff.level.desc(), GroupMember.id)
    ).all()
    tickets = session.execute(
        select(Ticket.number, Ticket.status, Ticket.building_id, Ticket.opened_at, Ticket.summary)
        .where(Ticket.group_id == group.id)
        .order_by(Ticket.opened_at, Ticket.id)
    ).all()
    names = dict(session.execute(select(Building.id, Building.name)).all()) if tickets else {}
    events = session.scalars(
        select(GroupEvent)
        .where(GroupEvent.group_id == group.id)
        .order_by(GroupEvent.at, GroupEvent.id)
    ).all()
    merged = session.get(GroupComplaint, group.merged_into_id) if group.merged_into_id else None
    return {
        "number": group.number,
        "project": project,
        "building": building,
        "topic": group.topic,
        "category": group.category,
        "phase": group.phase,
        "status": group.status,
        "merged_into": merged.number if merged else None,
        "households": group.households,
        "owner": f"{leader.name}（{leader.title}）" if leader else None,
        "team": "、".join(f"{name}（{title}）" for name, title in team),
        "detected_at": group.detected_at,
        "closed_at": group.closed_at,
        "result": group.result,
        "plan": plan(session, code, now),
        "tickets": [
            {
                "number": t.number,
                "status": t.status,
                "building": names.get(t.building_id),
                "opened_at": t.opened_at,
                "summary": t.summary,
            }
            for t in tickets
        ],
        "events": [
            {"at": e.at, "actor": e.actor, "action": e.action, "note": e.note} for e in events
        ],
    }


# --- the demo's planted group --------------------------------------------------------------------

DEMO_NOTES = {
    "emergency_group": "总经理牵头成立应急小组：工程部、客服中心、物业管理处",
    "key_issues": "查明车库排水泵故障、排水沟堵塞；责任部门工程部",
    "foresee": "预估暴雨再次积水、业主联名索赔与媒体关注",
    "solution": "抢修排水泵、清理排水沟；雨天专人值守车库并提前通知车主挪车",
}


def plant(session: Session, group_id: int, now: dt.datetime) -> None:
    """For `crm demo`: the plan, emergency group and events of the group it wrote directly,
    as detection would have left them, with the first steps done as far as `now` allows."""
    group = session.get(GroupComplaint, group_id)
    detected = group.detected_at
    steps = start_plan(session, group, detected)
    leader = session.get(Staff, group.owner_id) if group.owner_id else None
    who = f"{LEVELS[leader.level]} {leader.name}" if leader else "未登记总经理或经理"
    _log(session, group, "detect", f"{group.topic}；第一负责人：{who}", detected)
    linked = session.execute(
        select(TicketEvent.ticket_id, TicketEvent.at)
        .join(Ticket, Ticket.id == TicketEvent.ticket_id)
        .where(Ticket.group_id == group.id, TicketEvent.action == "group")
        .order_by(TicketEvent.at, TicketEvent.id)
    ).all()
    for ticket_id, at in linked:
        _log(session, group, "link", "相似投诉", at, ticket_id=ticket_id)
    hours = {code: h for code, _label, h in PLAN}
    for step in steps:
        done = detected + dt.timedelta(hours=hours[step.step] * 0.6)
        if step.step in DEMO_NOTES and done <= now:
            step.done_at, step.note = done, DEMO_NOTES[step.step]
            step.done_by = leader.name if leader else None
            _log(
                session, group, "step", f"{STEPS[step.step]}：{step.note}", done, actor=step.done_by
            )
    session.flush()
