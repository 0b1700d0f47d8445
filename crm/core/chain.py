"""The values that travel along the coordination chain, shared by the hooks that pass them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Feedback:
    """A signal about a household or project that needs a decision (e.g. 客情预警)."""

    id: str
    household_code: str | None
    reason: str
    strength: float
    source: str
    project: str | None = None


@dataclass(frozen=True)
class Plan:
    """One way to answer a feedback record, with its cost and expected value (yuan).

    `team` (a team kind such as technical or customer_service) and `ticket_type` tell service
    handling what to open; the gains are the expected changes in the probabilities of staying
    and of referring a new buyer.
    """

    name: str
    cost: float
    expected_value: float
    reason: str
    team: str | None = None
    ticket_type: str = "complaint"
    retention_gain: float = 0.0
    referral_gain: float = 0.0


@dataclass(frozen=True)
class Assessment:
    feedback_id: str
    options: list[Plan]
    best: Plan


@dataclass(frozen=True)
class Dispatch:
    """What service handling opened to carry a plan out."""

    feedback_id: str
    plan: str
    references: list[str] = field(default_factory=list)
    team: str | None = None


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


@dataclass(frozen=True)
class ServiceSignal:
    """A household whose service history warrants an early warning."""

    household_id: int
    kind: str  # repeat_complaint / broken_promise
    count: int
    reason: str
    last_at: dt.datetime
    references: list[str] = field(default_factory=list)
