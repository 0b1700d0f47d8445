"""Satisfaction sample data for `crm demo`: two yearly owner surveys, four-year-appointment
visit questionnaires (四年之约), and a few households whose satisfaction has just fallen, so
early warning has something to find.

Rows are drawn from `random.Random(seed)`, given ids here and written with Core executemany;
one `demo_data` audit entry records the counts.

Rates (DOMAIN.md reference figures in brackets):

| what                                            | rate                                     |
|-------------------------------------------------|------------------------------------------|
| yearly owner survey, answered by                | 20 % of owners, once 23 and once 11      |
|                                                 | months ago                               |
| would recommend (NPS 9-10) in owner surveys     | 48.5 % [48.5 % would recommend]          |
| satisfied (CSAT 4-5) in owner surveys: would    | 85 % of those who recommend, 30.7 % of   |
| buy again                                       | the others: 57 % [56.9 % would buy       |
|                                                 | again]                                   |
| visit questionnaire in the last two years       | 3 % of owners                            |
| satisfaction fell in the last three weeks       | one owner in 2,000 (at least 3)          |
| experience − expectation per aspect, by CSAT    | 5: 0..+2, 4: −1..+1, 3: −2..0,           |
|                                                 | 2: −4..−2, 1: −6..−3                     |

Revisit surveys arrive from service handling's demo through the tickets_revisited hook; this
hook runs after it (trylast) so the summary covers them too.
"""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session

from crm.core import audit
from crm.core.bulk import write_rows
from crm.core.models import Household
from crm.plugins.satisfaction.models import Survey, SurveyAspect
from crm.plugins.satisfaction.surveys import SURVEY_KINDS

BATCH = 5000
RECOMMEND = 0.485
SATISFIED_IF_RECOMMEND, SATISFIED_OTHERWISE = 0.85, 0.307
SURVEYED = 0.20
WAVES_MONTHS_AGO = (23, 11)
VISITED = 0.03
FALLING = 1 / 2000
OWNER_ASPECTS = ("物业服务", "工程质量", "社区环境", "安全管理", "维修服务", "销售承诺兑现")
GAP_BY_CSAT = {5: (0, 2), 4: (-1, 1), 3: (-2, 0), 2: (-4, -2), 1: (-6, -3)}
CHANNELS = ("phone", "online", "visit")
VISITORS = ("四年之约走访组", "客服中心走访组")
FALLING_COMMENTS = (
    "维修后问题反复出现，对物业失去信心",
    "多次反映车位问题，一直没人解决",
    "承诺的整改迟迟没有落实",
    "管家换了好几个，没人跟进我家的事",
)


class _Surveys:
    def __init__(self, session: Session, seed: int, now: dt.datetime):
        self.session = session
        self.rng = random.Random(seed * 104729 + 11)  # apart from the other demo streams
        self.now = now
        self.next_survey = session.scalar(select(func.max(Survey.id))) or 0
        self.next_aspect = session.scalar(select(func.max(SurveyAspect.id))) or 0
        self.surveys: list[dict] = []
        self.aspects: list[dict] = []
        self.counts = {"periodic": 0, "visit": 0}

    def add(
        self,
        kind: str,
        household_id: int,
        project_id: int | None,
        taken_at: dt.datetime,
        csat: int,
        nps: int,
        pairs: dict[str, tuple[int, int]],
        comment: str | None = None,
        taken_by: str | None = None,
        channel: str | None = None,
    ) -> None:
        self.next_survey += 1
        survey_id = self.next_survey
        self.surveys.append(
            {
                "id": survey_id,
                "kind": kind,
                "household_id": household_id,
                "project_id": project_id,
                "ticket_number": None,
                "team": None,
                "category": None,
                "channel": channel,
                "taken_at": taken_at,
                "entered_at": taken_at,
                "csat": csat,
                "nps": nps,
                "comment": comment,
                "taken_by": taken_by,
                "gap_total": sum(x - e for e, x in pairs.values()) if pairs else None,
                "aspect_count": len(pairs),
            }
        )
        for aspect, (expectation, experience) in pairs.items():
            self.next_aspect += 1
            self.aspects.append(
                {
                    "id": self.next_aspect,
                    "survey_id": survey_id,
                    "household_id": household_id,
                    "aspect": aspect,
                    "expectation": expectation,
                    "experience": experience,
                    "gap": experience - expectation,
                }
            )
        self.counts[kind] += 1
        if len(self.surveys) >= BATCH:
            self.flush()

    def flush(self) -> None:
        for model, rows in ((Survey, self.surveys), (SurveyAspect, self.aspects)):
            write_rows(self.session, model.__table__, rows)
            rows.clear()

    def _int(self, low: int, high: int) -> int:
        """randint without its argument checks (called hundreds of thousands of times)."""
        return low + int(self.rng.random() * (high - low + 1))

    def pairs(self, csat: int, count: int) -> dict[str, tuple[int, int]]:
        low, high = GAP_BY_CSAT[csat]
        pairs = {}
        for aspect in self.rng.sample(OWNER_ASPECTS, count):
            expectation = self._int(6, 10)
            pairs[aspect] = (
                expectation,
                min(10, max(1, expectation + self._int(low, high))),
            )
        return pairs

    def owner_answers(self) -> tuple[int, int]:
        """CSAT and would-recommend of an owner survey at the reference rates."""
        rng = self.rng
        promoter = rng.random() < RECOMMEND
        satisfied = rng.random() < (SATISFIED_IF_RECOMMEND if promoter else SATISFIED_OTHERWISE)
        if satisfied:
            csat = 5 if rng.random() < 0.45 else 4
        else:
            csat = 3 if rng.random() < 0.65 else 2 if rng.random() < 0.7 else 1
        if promoter:
            nps = self._int(9, 10)
        else:
            nps = self._int(7, 8) if rng.random() < 0.55 else self._int(0, 6)
        return csat, nps

    def build(self) -> list[str]:
        rng, now = self.rng, self.now
        owners = self.session.execute(
            select(Household.id, Household.project_id)
            .where(Household.status == "existing")
            .order_by(Household.id)
        ).all()
        satisfied_before: list[tuple[int, int | None, dt.datetime]] = []
        for months in WAVES_MONTHS_AGO:
            start = now - dt.timedelta(days=months * 30.4)
            for household_id, project_id in owners:
                if rng.random() >= SURVEYED:
                    continue
                taken = start + dt.timedelta(minutes=self._int(0, 30 * 1440))
                csat, nps = self.owner_answers()
                comment = "愿意再次购买本公司的房子" if csat >= 4 and rng.random() < 0.1 else None
                self.add(
                    "periodic",
                    household_id,
                    project_id,
                    taken,
                    csat,
                    nps,
                    self.pairs(csat, 3),
                    comment,
                    "年度业主满意度调查",
                    rng.choice(CHANNELS),
                )
                if csat >= 4:
                    satisfied_before.append((household_id, project_id, taken))
        for household_id, project_id in owners:
            if rng.random() < VISITED:
                taken = now - dt.timedelta(minutes=self._int(30 * 1440, 730 * 1440))
                csat, nps = self.owner_answers()
                self.add(
                    "visit", household_id, project_id, taken, csat, nps,
                    self.pairs(csat, 4), None, rng.choice(VISITORS), "visit",
                )  # fmt: skip
        # Owners who were content and whose latest visit went badly: early warning's catch.
        falling = max(3, round(len(owners) * FALLING))
        for household_id, project_id, _ in rng.sample(
            satisfied_before, min(falling, len(satisfied_before))
        ):
            csat = self._int(1, 2)
            self.add(
                "visit",
                household_id,
                project_id,
                now - dt.timedelta(minutes=self._int(1440, 20 * 1440)),
                csat,
                self._int(0, 4),
                self.pairs(csat, 4),
                rng.choice(FALLING_COMMENTS),
                rng.choice(VISITORS),
                "visit",
            )
        self.flush()
        if self.session.get_bind().dialect.name == "postgresql":
            # Ids were assigned here, so PostgreSQL's sequences must move past them.
            for table in ("sat_surveys", "sat_survey_aspects"):
                self.session.execute(
                    text(
                        "SELECT setval(pg_get_serial_sequence(:name, 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                    ),
                    {"name": table},
                )
        audit.record(
            self.session,
            "demo_data",
            "sat_surveys",
            changes=dict(self.counts),
            detail=f"演示数据：满意度调查 {sum(self.counts.values())} 份",
        )
        return self.summary()

    def summary(self) -> list[str]:
        """Figures over every survey in the demo database, the revisits included."""
        counts = {kind: 0 for kind in SURVEY_KINDS}
        rated = satisfied = recommending = promoters = detractors = 0
        for kind, count, with_csat, happy, with_nps, high, low in self.session.execute(
            select(
                Survey.kind,
                func.count(),
                func.count(Survey.csat),
                func.count(case((Survey.csat >= 4, 1))),
                func.count(Survey.nps),
                func.count(case((Survey.nps >= 9, 1))),
                func.count(case((Survey.nps <= 6, 1))),
            ).group_by(Survey.kind)
        ):
            counts[kind] = count
            rated, satisfied = rated + with_csat, satisfied + happy
            recommending += with_nps
            promoters, detractors = promoters + high, detractors + low
        answered = sum(counts.values())
        if not answered:
            return []
        return [
            (
                f"满意度调查 {answered:,} 份（回访 {counts['revisit']:,}、定期 "
                f"{counts['periodic']:,}、走访 {counts['visit']:,}）：满意率 "
                f"{satisfied / max(rated, 1):.1%}，愿意推荐 "
                f"{promoters / max(recommending, 1):.1%}，NPS "
                f"{(promoters - detractors) / max(recommending, 1) * 100:+.0f}"
            ),
            (
                "试试：crm satisfaction report --by project、crm satisfaction report --by cause、"
                "crm satisfaction warnings --detect"
            ),
        ]


def build_demo_data(session: Session, seed: int, now: dt.datetime) -> list[str]:
    """Surveys for the demo portfolio; returns the summary lines."""
    return _Surveys(session, seed, now).build()
