"""The values that travel along the coordination chain, shared by the hooks that pass them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields

# The tasks coordination's plans give to staff: what profitability assessment may choose and
# service handling carries out.
TASK_KINDS = {
    "call": "电话回访",
    "apology_visit": "上门致歉",
    "priority_repair": "优先维修",
    "gift": "赠送礼品",
    "compensation": "经济补偿",
    "supervision": "经理督办",
    "improvement": "项目整改",
}


@dataclass(frozen=True)
class Feedback:
    """A signal about a household or project that needs a decision (e.g. 客情预警).

    The steps of the chain work with the ids; the code and the project's name are carried
    along only to be shown in the decision log."""

    id: str
    household_id: int | None
    reason: str
    strength: float
    source: str
    project_id: int | None = None
    household_code: str | None = None
    project: str | None = None


@dataclass(frozen=True)
class Plan:
    """One way to answer a feedback record, with its cost and expected value (yuan).

    `team` (a team kind such as technical or customer_service) and `task` (call,
    apology_visit, priority_repair, gift, compensation, supervision, improvement) tell service
    handling what task to give to whom; the gains are the expected changes in the
    probabilities of staying and of referring a new buyer.
    """

    name: str
    cost: float
    expected_value: float
    reason: str
    team: str | None = None
    task: str = "call"
    retention_gain: float = 0.0
    referral_gain: float = 0.0

    @classmethod
    def from_dict(cls, values: dict) -> Plan:
        """A plan as stored in a decision; one stored before plans named their task (they
        opened a ticket of `ticket_type` then) is followed up by a call."""
        known = {name: value for name, value in values.items() if name in PLAN_FIELDS}
        return cls(**known)


@dataclass(frozen=True)
class Instruction:
    """Coordination's instruction to service handling: carry out this decision's plan."""

    decision_id: int
    feedback: Feedback
    plan: Plan


@dataclass(frozen=True)
class Assessment:
    feedback_id: str
    options: list[Plan]
    best: Plan


@dataclass(frozen=True)
class Dispatch:
    """What service handling gave out to carry a plan out."""

    feedback_id: str
    plan: str
    references: list[str] = field(default_factory=list)
    team: str | None = None  # the team's code
    team_name: str | None = None  # and its name, as the decision log shows it


@dataclass(frozen=True)
class WorkOutcome:
    """Where dispatched work stands: open, closed, cancelled, returned or unknown; for done
    work with a customer, what the customer answered and whether they accepted it."""

    status: str
    answer: str | None = None
    accepted: bool | None = None
    done_at: dt.datetime | None = None

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "answer": self.answer,
            "accepted": self.accepted,
            "done_at": self.done_at.isoformat() if self.done_at else None,
        }


@dataclass(frozen=True)
class TicketFacts:
    """What other plugins may know of a service ticket, passed through hooks (they never read
    service handling's tables)."""

    number: str
    ticket_type: str
    household_id: int
    project_id: int | None
    team: str | None
    category: str | None
    severity: str
    closed_at: dt.datetime | None


@dataclass(frozen=True)
class Revisit:
    """A customer's answers when a closed ticket was revisited (回访); aspects map a name to
    (expectation, experience)."""

    ticket: TicketFacts
    at: dt.datetime
    csat: int | None
    nps: int | None
    aspects: dict[str, tuple[int, int]]
    comment: str | None
    actor: str
    channel: str = "phone"
    # When the answers were typed in (`at` is when the customer gave them); None: at `at`.
    entered_at: dt.datetime | None = None


@dataclass(frozen=True)
class VisitAnswers:
    """A customer's satisfaction given on a visit (走访, e.g. the four-yearly 四年之约), for
    satisfaction monitoring: a visit questionnaire taken `at` in the visited unit's project.

    `reference` names the visit (e.g. camp_visit:12). A corrected visit's answers `replace`
    those of the visit it corrects; csat None then withdraws them (the correction has none)."""

    household_id: int
    project_id: int | None
    at: dt.datetime
    csat: int | None
    comment: str | None
    actor: str
    reference: str
    replaces: str | None = None
    # When it was typed in (`at` is when the customer gave it); None: at `at`.
    entered_at: dt.datetime | None = None


@dataclass(frozen=True)
class ServiceSignal:
    """A household whose service history warrants an early warning."""

    household_id: int
    kind: str  # repeat_complaint / broken_promise
    count: int
    reason: str
    last_at: dt.datetime
    references: list[str] = field(default_factory=list)


PLAN_FIELDS = frozenset(f.name for f in fields(Plan))
