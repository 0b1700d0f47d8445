"""Households: look-up, listing, search, adding and updating, and the core sections of the
tracking card (客户资料跟踪卡).

Functions take a Session and never commit. Input from the CLI is checked with the import
schemas of crm.core.schemas, so a field obeys the same rules whichever way it arrives;
vocabulary fields accept the code or the Chinese label.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, func, or_, select, text
from sqlalchemy.orm import Session, aliased

from crm.core import audit, vocab
from crm.core.audit import current_user
from crm.core.card import CardSection
from crm.core.errors import CrmError, NotFound
from crm.core.identity import halfwidth, normalize_id_number, normalize_phone
from crm.core.models import (
    AuditEntry,
    Building,
    Household,
    Member,
    Project,
    Purchase,
    Referral,
    ServiceRecord,
    Unit,
    utcnow,
)
from crm.core.paging import Page, fetch
from crm.core.privacy import Disclosure, reads_sealed, seal_member_fields
from crm.core.security import mask_id_number, mask_phone
from crm.core.settings import IntSetting
from crm.core.sorting import natural_order

if TYPE_CHECKING:
    from marshmallow import Schema

FIELD_LABELS = {
    "code": "客户编号",
    "name": "客户名称",
    "status": "客户状态",
    "project": "所属项目",
    "age": "年龄",
    "income_band": "家庭年收入",
    "housing": "住房情况",
    "education": "教育程度",
    "occupation": "职业",
    "club_activities": "社团活动",
    "member_tier": "会员等级",
    "consent_contact": "同意联系",
    "consent_marketing": "同意营销",
    "note": "备注",
}
MEMBER_LABELS = {
    "name": "成员姓名",
    "role": "成员身份",
    "phone": "手机号",
    "alt_phone": "备用电话",
    "id_number": "身份证号",
}
# The card is one page: older closed records are counted, not listed.
PAST_SERVICE_ON_CARD = 20
_UNIT_CODE = re.compile(r"[0-9A-Z]+(?:-[0-9A-Z]+)*")


# --- input schemas -------------------------------------------------------------------------


# marshmallow is imported only by the commands that take input (add, update), not by every
# command that reads a household.
@functools.cache
def _household_input_class() -> type[Schema]:
    from marshmallow import RAISE

    from crm.core.schemas import HouseholdSchema

    class HouseholdInput(HouseholdSchema):
        """A household as typed on the command line: the import columns and rules, but a
        field the schema does not know is an error rather than an ignored column."""

        class Meta:
            unknown = RAISE

    return HouseholdInput


def household_input() -> Schema:
    return _household_input_class()()


def member_input() -> Schema:
    """A member as typed on the command line (the household comes from the command)."""
    from marshmallow import RAISE

    from crm.core.schemas import MemberSchema

    return MemberSchema(only=("name", "role", "phone", "alt_phone", "id_number"), unknown=RAISE)


def vocab_code(vocabulary: dict[str, str], text: str) -> str:
    """The stored code for a code, Chinese label or synonym; ValueError naming the choices."""
    from crm.core.schemas import Vocab

    return Vocab(vocabulary).parse_text(halfwidth(text).strip())


def _load(
    schema: Schema, data: Mapping[str, Any], labels: dict[str, str], partial: bool = False
) -> dict:
    """Validated values, or one Chinese sentence naming every bad field."""
    from marshmallow import ValidationError

    try:
        return schema.load(dict(data), partial=partial)
    except ValidationError as exc:
        problems = []
        for key, messages in exc.normalized_messages().items():
            label = labels.get(key, key)
            for message in messages if isinstance(messages, list) else [str(messages)]:
                if message == "Unknown field.":
                    message = "不是可填写的字段"
                problems.append(f"{label}：{message}")
        raise CrmError(f"输入有误：{'；'.join(problems)}。") from None


# --- look-up, listing, search ----------------------------------------------------------------


def get_household(session: Session, code: str) -> Household:
    household = session.scalar(select(Household).where(Household.code == code.strip()))
    if household is None:
        raise NotFound(
            f"找不到客户编号为“{code}”的客户家庭：请用 crm household search 按姓名、电话或房号查找。"
        )
    return household


def project_id(session: Session, name: str) -> int:
    found = session.scalar(select(Project.id).where(Project.name == name.strip()))
    if found is None:
        known = session.scalars(select(Project.name).order_by(Project.name).limit(10)).all()
        hint = f"现有项目：{'、'.join(known)}" if known else "数据库中还没有项目"
        raise NotFound(f"找不到项目“{name}”：{hint}。")
    return found


def _listing(
    session: Session, conditions: list[ColumnElement[bool]], limit: int | None, offset: int
) -> Page:
    # The owner first, then whoever was entered first: one name to recognise the household by.
    owner = (
        select(Member.name)
        .where(Member.household_id == Household.id)
        .order_by(Member.role != "owner", Member.id)
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(
            Household.id,
            Household.code,
            Household.name,
            Household.status,
            Project.name.label("project"),
            Household.member_tier,
            owner.label("owner"),
        )
        .outerjoin(Project, Household.project_id == Project.id)
        .where(*conditions)
        .order_by(Household.code)
    )
    page = fetch(session, query, limit, offset)
    units = units_of(session, [row.id for row in page])
    return page.map(
        lambda row: {
            "code": row.code,
            "name": row.name,
            "status": row.status,
            "project": row.project,
            "member_tier": row.member_tier,
            "owner": row.owner,
            "units": units.get(row.id, []),
        }
    )


def units_of(session: Session, household_ids: list[int]) -> dict[int, list[str]]:
    """household id -> its units as `ticket show` and the card print them (项目/楼栋/房号):
    those it bought (in order of purchase), then those only its service records name (a
    tenant's flat)."""
    if not household_ids:
        return {}
    place = (Project.name + "/" + Building.name + "/" + Unit.code).label("place")
    bought = (
        select(Purchase.household_id, place, Purchase.purchase_date, Purchase.id)
        .join(Unit, Purchase.unit_id == Unit.id)
        .join(Building, Unit.building_id == Building.id)
        .join(Project, Building.project_id == Project.id)
        .where(Purchase.household_id.in_(household_ids))
        .order_by(Purchase.household_id, Purchase.purchase_date, Purchase.id)
    )
    served = (
        select(ServiceRecord.household_id, place)
        .join(Unit, ServiceRecord.unit_id == Unit.id)
        .join(Building, Unit.building_id == Building.id)
        .join(Project, Building.project_id == Project.id)
        .where(ServiceRecord.household_id.in_(household_ids))
        .distinct()
        .order_by(ServiceRecord.household_id, place)
    )
    found: dict[int, list[str]] = {}
    for household_id, shown, *_ in [*session.execute(bought), *session.execute(served)]:
        places = found.setdefault(household_id, [])
        if shown not in places:
            places.append(shown)
    return found


def first_owner_id():
    """The id of the household's first owner member, as a subquery correlated to `Household`:
    the person an outreach list, a visit list or a touchpoint names and calls."""
    return (
        select(func.min(Member.id))
        .where(Member.household_id == Household.id, Member.role == "owner")
        .correlate(Household)
        .scalar_subquery()
    )


def _vocab_filter(vocabulary: dict[str, str], text: str, what: str) -> str:
    try:
        return vocab_code(vocabulary, text)
    except ValueError:
        raise CrmError(f"{what}“{text}”不存在：可选 {'、'.join(vocabulary.values())}。") from None


def list_households(
    session: Session,
    project: str | None = None,
    status: str | None = None,
    tier: str | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> Page:
    """Households ordered by code, optionally of one project, status or member tier; one
    page of them, with how many match (`Page.total`)."""
    conditions = []
    if project:
        conditions.append(Household.project_id == project_id(session, project))
    if status:
        conditions.append(
            Household.status == _vocab_filter(vocab.HOUSEHOLD_STATUS, status, "客户状态")
        )
    if tier:
        conditions.append(
            Household.member_tier == _vocab_filter(vocab.MEMBER_TIERS, tier, "会员等级")
        )
    return _listing(session, conditions, limit, offset)


def _has_member(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    # IN rather than a correlated EXISTS: the indexed member columns are searched once.
    return Household.id.in_(select(Member.household_id).where(*conditions))


def _by_name(text: str) -> ColumnElement[bool]:
    text = halfwidth(text).strip()
    return or_(
        Household.name.icontains(text, autoescape=True),
        _has_member(Member.name.icontains(text, autoescape=True)),
    )


def _by_phone(session: Session, text: str, personal: list[str]) -> ColumnElement[bool]:
    text = halfwidth(text).strip()
    if re.fullmatch(r"\d{4}", text):
        personal.append(f"手机尾号 {text}")
        either = or_(Member.phone_tail == text, Member.alt_phone_tail == text)
        return _personal_match(session, "tail", text, personal[-1], either)
    try:
        phone = normalize_phone(text)
    except ValueError as exc:
        raise CrmError(f"电话号码“{text}”{exc}：按尾号查找请输入 4 位数字。") from None
    personal.append(f"电话 {mask_phone(phone)}")
    digest = session.info["vault"].lookup_hash(phone)
    either = or_(Member.phone_hash == digest, Member.alt_phone_hash == digest)
    return _personal_match(session, "phone", digest, personal[-1], either)


def _by_id_number(session: Session, text: str, personal: list[str]) -> ColumnElement[bool]:
    try:
        number = normalize_id_number(text)
    except ValueError as exc:
        raise CrmError(f"无法按身份证号查找：{exc}。") from None
    personal.append(f"身份证号 {mask_id_number(number)}")
    digest = session.info["vault"].lookup_hash(number)
    return _personal_match(
        session, "id_number", digest, personal[-1], Member.id_number_hash == digest
    )


def _personal_match(
    session: Session, kind: str, value: str, what: str, condition: ColumnElement[bool]
) -> ColumnElement[bool]:
    """Households with a member matching `condition` (`kind` = `value`). A session that may
    not read the hashes (on PostgreSQL) asks the database instead, which finds the members,
    writes the audit entry and applies the hourly limit (migration 0006); otherwise the
    caller's guard does (`_guard_personal_search`)."""
    if reads_sealed(session):
        return _has_member(condition)
    limit = search_limit(session)  # a bad setting is one sentence here, as on SQLite
    user = current_user(session)
    ids = session.scalar(
        text("SELECT crm_find_members(:kind, :value, :detail, :actor, :role, :label)"),
        {
            "kind": kind,
            "value": value,
            "detail": f"按{what}查找",
            "actor": user.name,
            "role": user.role,
            "label": user.label,
        },
    )
    if ids is None:
        session.commit()  # the refusal stays on record
        raise _limit_reached(limit)
    return _has_member(Member.id.in_(ids))


def _households_in(units) -> ColumnElement[bool]:
    # A household's units are those it bought and those its service records name.
    return or_(
        Household.id.in_(select(Purchase.household_id).where(Purchase.unit_id.in_(units))),
        Household.id.in_(
            select(ServiceRecord.household_id).where(ServiceRecord.unit_id.in_(units))
        ),
    )


def _by_unit(text: str) -> ColumnElement[bool]:
    """A unit code (1903, 12-1A), or a unit or building in the printed form (`_by_place`)."""
    place = _place(text)
    if place is not None:
        return _by_place(place)
    return _households_in(select(Unit.id).where(Unit.code == halfwidth(text).strip().upper()))


# A building as the projects name them: 2栋, 2号楼, 3幢, A座; a unit code may follow it.
_BUILDING_THEN_UNIT = re.compile(
    r"(?P<project>.*?)(?P<building>[0-9A-Z]+(?:栋|号楼|幢|座))(?P<unit>[0-9A-Z]+(?:-[0-9A-Z]+)*)?"
)


def _place(text: str) -> list[tuple[str | None, str, str | None]] | None:
    """The (project, building, unit) a text may name, or None when it names no place:

    - 翠湖花园/2栋/1903 (as `ticket show` and the card print a unit): that unit;
    - 翠湖花园/2栋 or 2栋/1903: a building of a project, or a unit of a building of any
      project (the two readings are tried together: names are matched exactly);
    - 2栋1903, 翠湖花园2栋1903, 2栋, 翠湖花园2号楼: a building name ending in 栋, 号楼, 幢 or
      座, with the project before it and the unit code after it when given.

    2-1903 is not read as building 2, unit 1903: it is the form of unit codes (1-1A)."""
    text = halfwidth(text).strip()
    if "/" in text:
        parts = [part.strip() for part in text.split("/")]
        if len(parts) > 3 or not all(parts):
            raise CrmError(
                f"房号“{text}”的写法不对：请写成 项目/楼栋/房号（如 翠湖花园/2栋/1903）、"
                "项目/楼栋 或 楼栋/房号。"
            )
        if len(parts) == 3:
            return [(parts[0], parts[1], parts[2].upper())]
        return [(parts[0], parts[1], None), (None, parts[0], parts[1].upper())]
    found = _BUILDING_THEN_UNIT.fullmatch(text.upper())
    if found is None:
        return None
    # Project names keep their case: take the project part from the text as typed.
    project = text[: len(found["project"])].strip() or None
    return [(project, found["building"], found["unit"])]


def _by_place(readings: list[tuple[str | None, str, str | None]]) -> ColumnElement[bool]:
    """Households with a unit at one of these (project, building, unit) places (a None
    project: any project; a None unit: the whole building)."""
    alternatives = []
    for project, building, unit in readings:
        conditions = [Building.name == building]
        if project is not None:
            conditions.append(Project.name == project)
        if unit is not None:
            conditions.append(Unit.code == unit)
        alternatives.append(and_(*conditions))
    units = (
        select(Unit.id)
        .join(Building, Unit.building_id == Building.id)
        .join(Project, Building.project_id == Project.id)
        .where(or_(*alternatives))
    )
    return _households_in(units)


def _by_building(text: str) -> ColumnElement[bool]:
    """项目/楼栋 or a building name alone (2栋: that building in every project)."""
    text = halfwidth(text).strip()
    parts = [part.strip() for part in text.split("/")]
    if len(parts) > 2 or not all(parts):
        raise CrmError(f"楼栋“{text}”的写法不对：请写成 项目/楼栋（如 翠湖花园/2栋）或只写楼栋。")
    project, building = parts if len(parts) == 2 else (None, parts[0])
    return _by_place([(project, building, None)])


def _by_project(text: str) -> ColumnElement[bool]:
    projects = select(Project.id).where(
        Project.name.icontains(halfwidth(text).strip(), autoescape=True)
    )
    bought_there = (
        select(Purchase.household_id)
        .join(Unit, Purchase.unit_id == Unit.id)
        .join(Building, Unit.building_id == Building.id)
        .where(Building.project_id.in_(projects))
    )
    return or_(Household.project_id.in_(projects), Household.id.in_(bought_there))


def _guess(session: Session, text: str, personal: list[str]) -> ColumnElement[bool]:
    """What a free-text query most likely is: ID number, phone, tail or unit, a unit or
    building in the printed form, name or project."""
    text = halfwidth(text).strip()
    if re.fullmatch(r"\d{17}[\dXx]", text):
        return _by_id_number(session, text, personal)
    if re.fullmatch(r"\d{4}", text):  # a phone tail (尾号) and a flat like 1903 look alike
        return or_(_by_phone(session, text, personal), _by_unit(text))
    try:
        normalize_phone(text)
    except ValueError:
        pass
    else:
        return _by_phone(session, text, personal)
    if "/" in text:
        return _by_place(_place(text))
    if _UNIT_CODE.fullmatch(text.upper()) and any(ch.isdigit() for ch in text):
        return _by_unit(text)
    place = _place(text)
    if place is not None:  # 2栋1903, 翠湖花园2栋: a name or project could still read so
        return or_(_by_place(place), _by_name(text), _by_project(text))
    return or_(_by_name(text), _by_project(text))


# A salesperson dialling a list looks up a few dozen numbers an hour; turning a masked
# 182****0355 back into the number takes thousands of tail searches. On PostgreSQL the database
# reads the same setting (migration 0006).
SEARCH_LIMIT = IntSetting("privacy.search_limit_per_hour", 30, "每人每小时按个人信息查找的次数")


def search_limit(session: Session) -> int:
    """How many searches by phone, phone tail or ID number a user who sees personal data
    masked may make in an hour (setting privacy.search_limit_per_hour)."""
    return SEARCH_LIMIT.read(session)


def set_search_limit(session: Session, value: str) -> tuple[str | None, str]:
    """Change the hourly limit of searches by personal data; returns (old, new), audited."""
    current_user(session).require("privacy.configure", "修改按个人信息查找的上限")
    return SEARCH_LIMIT.write(session, value)


def _guard_personal_search(session: Session, personal: list[str]) -> None:
    """Every search by personal data is audited; a user who sees it masked may make only
    `search_limit` of them an hour, and reaching the limit is put on record for managers
    (`crm audit list --action search_limit`).

    The refusal is committed before it is raised: a refused search must stay on record even
    though the command fails."""
    user = current_user(session)
    detail = "按" + "、".join(personal) + "查找"
    if not user.can("personal.full"):
        limit = search_limit(session)
        since = utcnow() - dt.timedelta(hours=1)
        done = session.scalar(
            select(func.count(AuditEntry.id)).where(
                AuditEntry.action == "search_personal",
                AuditEntry.actor == user.name,
                AuditEntry.at >= since,
            )
        )
        if done >= limit:
            audit.record(
                session,
                "search_limit",
                "members",
                detail=f"{user.label}一小时内按个人信息查找已达上限 {limit} 次；被拒绝的查找：{detail}",
            )
            session.commit()
            raise _limit_reached(limit)
    audit.record(session, "search_personal", "members", detail=detail)


def _limit_reached(limit: int) -> CrmError:
    return CrmError(
        f"一小时内按电话、尾号或身份证号查找已达上限（{limit} 次），本次未执行，"
        "已记入审计日志，经理会在 crm audit alerts 中看到；如确有需要，请联系经理。"
    )


def search_households(
    session: Session,
    query: str | None = None,
    *,
    name: str | None = None,
    phone: str | None = None,
    id_number: str | None = None,
    unit: str | None = None,
    building: str | None = None,
    project: str | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> Page:
    """Households matching every key given, one page of them with how many match; the
    free-text query is matched by what it looks like. Phones (main or alternative, in full or
    the last four digits) and ID numbers are found by their keyed hash, never decrypted; a
    search by them is audited and limited (see `_guard_personal_search`), so the caller
    commits."""
    conditions: list[ColumnElement[bool]] = []
    personal: list[str] = []
    if query and query.strip():
        conditions.append(_guess(session, query, personal))
    if name:
        conditions.append(_by_name(name))
    if phone:
        conditions.append(_by_phone(session, phone, personal))
    if id_number:
        conditions.append(_by_id_number(session, id_number, personal))
    if unit:
        conditions.append(_by_unit(unit))
    if building:
        conditions.append(_by_building(building))
    if project:
        conditions.append(_by_project(project))
    if not conditions:
        raise CrmError(
            "请给出要查找的内容：姓名、电话（完整号码或尾号 4 位）、身份证号、房号、楼栋或项目名称。"
        )
    if personal and reads_sealed(session):  # otherwise the database did (above)
        _guard_personal_search(session, personal)
    return _listing(session, conditions, limit, offset)


# --- adding and updating ---------------------------------------------------------------------


def _project_for(session: Session, name: str) -> Project:
    """The named project; a new name creates it (the audit log records the creation)."""
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        project = Project(name=name)
        session.add(project)
    return project


def _new_member(session: Session, household: Household, values: dict, role: str) -> Member:
    if any(member.name == values["name"] for member in household.members):
        raise CrmError(
            f"客户家庭 {household.code} 已有名为“{values['name']}”的成员：请换一个姓名。"
        )
    sealed = seal_member_fields(
        session.info["vault"],
        phone=values.get("phone"),
        alt_phone=values.get("alt_phone"),
        id_number=values.get("id_number"),
    )
    member = Member(name=values["name"], role=values.get("role") or role, **sealed)
    household.members.append(member)
    return member


def add_household(
    session: Session, data: Mapping[str, Any], owner: Mapping[str, Any] | None = None
) -> Household:
    """A new household, with its owner when `owner` (name, phone, id_number …) is given.
    Everything is checked before anything is added."""
    current_user(session).require("household.write", "新增客户家庭")
    values = _load(household_input(), data, FIELD_LABELS)
    owner_values = _load(member_input(), owner, MEMBER_LABELS) if owner else None
    code = values["code"]
    if session.scalar(select(Household.id).where(Household.code == code)) is not None:
        raise CrmError(
            f"客户编号 {code} 已存在：请换一个编号，或用 crm household update {code} 修改。"
        )
    project_name = values.pop("project", None)
    household = Household(**values)
    if project_name:
        household.project = _project_for(session, project_name)
    session.add(household)
    if owner_values:
        _new_member(session, household, owner_values, role="owner")
    session.flush()
    return household


def update_household(session: Session, code: str, changes: Mapping[str, Any]) -> list[str]:
    """Change only the given fields; returns the labels of the fields that really changed.
    The audit hook records each change as old -> new."""
    current_user(session).require("household.write", "修改客户资料")
    if not changes:
        raise CrmError("没有给出要修改的字段：例如 --age 45 或 --status 业主。")
    values = _load(household_input(), changes, FIELD_LABELS, partial=True)
    household = get_household(session, code)
    if "code" in values and values["code"] != household.code:
        taken = session.scalar(select(Household.id).where(Household.code == values["code"]))
        if taken is not None:
            raise CrmError(f"客户编号 {values['code']} 已被占用：请换一个编号。")
    changed = []
    if "project" in values:
        name = values.pop("project")
        current = household.project.name if household.project else None
        if name != current:
            household.project = _project_for(session, name) if name else None
            changed.append(FIELD_LABELS["project"])
    for key, value in values.items():
        if getattr(household, key) != value:
            setattr(household, key, value)
            changed.append(FIELD_LABELS[key])
    session.flush()
    return changed


def add_member(session: Session, code: str, data: Mapping[str, Any]) -> Member:
    """Add a person to a household; phones and the ID number are checked, then sealed."""
    current_user(session).require("household.write", "新增家庭成员")
    values = _load(member_input(), data, MEMBER_LABELS)
    household = get_household(session, code)
    member = _new_member(session, household, values, role="family")
    session.flush()
    return member


# --- the core sections of the tracking card --------------------------------------------------


def card_sections(session: Session, household: Household) -> list[CardSection]:
    """Profile, members (masked per role), units, purchases, referrals and service records.

    Members shown in full are written to the audit log in the caller's transaction.
    """
    purchases = _purchases(session, household)
    return [
        _profile(household),
        _members(session, household),
        _units(session, household, purchases),
        CardSection(
            "购买记录",
            columns=[
                "合同号",
                "购买日期",
                "项目",
                "楼栋",
                "房号",
                "面积(㎡)",
                "金额(元)",
                "渠道",
                "推荐人",
                "参加推介(次)",
                "交房日期",
            ],
            rows=[{k: v for k, v in row.items() if not k.startswith("_")} for row in purchases],
        ),
        _referrals(session, household, made=True),
        _referrals(session, household, made=False),
        *_service(session, household),
    ]


def _profile(household: Household) -> CardSection:
    labelled = {
        "status": vocab.HOUSEHOLD_STATUS,
        "income_band": vocab.INCOME_BANDS,
        "housing": vocab.HOUSING,
        "education": vocab.EDUCATION,
        "member_tier": vocab.MEMBER_TIERS,
    }
    lines: list[tuple[str, Any]] = []
    for key, title in FIELD_LABELS.items():
        if key == "project":
            value = household.project.name if household.project else None
        elif key in labelled:
            value = vocab.label(labelled[key], getattr(household, key)) or None
        else:
            value = getattr(household, key)
        lines.append((title, value))
    lines.append(("建档日期", household.created_at.date() if household.created_at else None))
    return CardSection("基本资料", lines=lines)


def _members(session: Session, household: Household) -> CardSection:
    members = session.scalars(
        select(Member).where(Member.household_id == household.id).order_by(Member.id)
    ).all()
    rows = []
    with Disclosure(session, f"查看客户资料跟踪卡 {household.code}") as disclosure:
        for member, shown in zip(members, disclosure.members(list(members)), strict=True):
            rows.append(
                {
                    "姓名": member.name,
                    "身份": vocab.label(vocab.MEMBER_ROLES, member.role),
                    "手机": shown["phone"],
                    "备用电话": shown["alt_phone"],
                    "身份证号": shown["id_number"],
                }
            )
    return CardSection(
        "家庭成员", columns=["姓名", "身份", "手机", "备用电话", "身份证号"], rows=rows
    )


def _purchases(session: Session, household: Household) -> list[dict]:
    referrer = aliased(Household)
    query = (
        select(
            Purchase,
            Unit.id.label("unit_id"),
            Unit.code.label("unit"),
            Unit.floor_area.label("unit_area"),
            Building.name.label("building"),
            Project.name.label("project"),
            referrer.code.label("referrer_code"),
            referrer.name.label("referrer_name"),
        )
        .outerjoin(Unit, Purchase.unit_id == Unit.id)
        .outerjoin(Building, Unit.building_id == Building.id)
        .outerjoin(Project, Building.project_id == Project.id)
        .outerjoin(referrer, Purchase.referrer_household_id == referrer.id)
        .where(Purchase.household_id == household.id)
        .order_by(Purchase.purchase_date, Purchase.id)
    )
    rows = []
    for row in session.execute(query):
        purchase = row.Purchase
        rows.append(
            {
                "合同号": purchase.contract_no,
                "购买日期": purchase.purchase_date,
                "项目": row.project,
                "楼栋": row.building,
                "房号": row.unit,
                "面积(㎡)": purchase.floor_area,
                "金额(元)": purchase.amount,
                "渠道": vocab.label(vocab.PURCHASE_CHANNELS, purchase.channel),
                "推荐人": f"{row.referrer_code} {row.referrer_name}" if row.referrer_code else None,
                "参加推介(次)": purchase.promotions_attended,
                "交房日期": purchase.handover_date,
                "_unit_id": row.unit_id,
                "_unit_area": row.unit_area,
            }
        )
    return rows


def _units(session: Session, household: Household, purchases: list[dict]) -> CardSection:
    rows = [
        {
            "项目": p["项目"],
            "楼栋": p["楼栋"],
            "房号": p["房号"],
            "建筑面积(㎡)": p["_unit_area"] or p["面积(㎡)"],
            "关系": "购买",
            "交房日期": p["交房日期"],
        }
        for p in purchases
        if p["_unit_id"] is not None
    ]
    bought = {p["_unit_id"] for p in purchases if p["_unit_id"] is not None}
    # Tenants and family members call about flats the household did not buy here.
    served = session.execute(
        select(Unit.id, Unit.code, Unit.floor_area, Building.name, Project.name)
        .join(Building, Unit.building_id == Building.id)
        .join(Project, Building.project_id == Project.id)
        .where(
            Unit.id.in_(
                select(ServiceRecord.unit_id).where(ServiceRecord.household_id == household.id)
            )
        )
        .order_by(Project.name, *natural_order(Building.name), *natural_order(Unit.code))
    ).all()
    rows += [
        {
            "项目": project,
            "楼栋": building,
            "房号": code,
            "建筑面积(㎡)": area,
            "关系": "服务记录",
            "交房日期": None,
        }
        for unit_id, code, area, building, project in served
        if unit_id not in bought
    ]
    return CardSection(
        "房产", columns=["项目", "楼栋", "房号", "建筑面积(㎡)", "关系", "交房日期"], rows=rows
    )


def _referrals(session: Session, household: Household, made: bool) -> CardSection:
    """Referral rows, plus purchases attributed to a referrer for pairs without a referral row."""
    other = aliased(Household)
    mine, theirs = (
        (Referral.referrer_household_id, Referral.referred_household_id)
        if made
        else (Referral.referred_household_id, Referral.referrer_household_id)
    )
    recorded = session.execute(
        select(other.code, other.name, Referral.referred_on, Purchase.contract_no, Purchase.amount)
        .select_from(Referral)
        .join(other, theirs == other.id)
        .outerjoin(Purchase, Referral.purchase_id == Purchase.id)
        .where(mine == household.id)
    ).all()
    counterpart, own = (
        (Purchase.household_id, Purchase.referrer_household_id)
        if made
        else (Purchase.referrer_household_id, Purchase.household_id)
    )
    attributed = session.execute(
        select(
            other.code,
            other.name,
            Purchase.purchase_date,
            Purchase.contract_no,
            Purchase.amount,
        )
        .select_from(Purchase)
        .join(other, counterpart == other.id)
        .where(own == household.id, counterpart.not_in(select(theirs).where(mine == household.id)))
    ).all()
    rows = sorted(
        (
            {
                "客户编号": code,
                "客户名称": name,
                "推荐日期": day,
                "成交合同号": contract,
                "成交金额(元)": amount,
            }
            for code, name, day, contract, amount in [*recorded, *attributed]
        ),
        key=lambda row: (row["推荐日期"] or dt.date.max, row["客户编号"]),
    )
    return CardSection(
        "推荐他人（老带新）" if made else "被推荐",
        columns=["客户编号", "客户名称", "推荐日期", "成交合同号", "成交金额(元)"],
        rows=rows,
    )


def _record_states(session: Session, record_nos: list[str]) -> dict[str, dict]:
    """What the plugins that keep register entries say of them now (step, due time, owner)."""
    pm = session.info.get("pm")
    if pm is None or not record_nos:
        return {}
    states: dict[str, dict] = {}
    for answer in pm.hook.service_record_states(session=session, record_nos=record_nos):
        states.update(answer or {})
    return states


def _service(session: Session, household: Household) -> list[CardSection]:
    def records(status: str, newest_first: bool, limit: int | None = None):
        order = (
            (func.coalesce(ServiceRecord.closed_at, ServiceRecord.opened_at).desc(),)
            if newest_first
            else (ServiceRecord.opened_at,)
        )
        query = (
            select(ServiceRecord, Unit.code)
            .outerjoin(Unit, ServiceRecord.unit_id == Unit.id)
            .where(ServiceRecord.household_id == household.id, ServiceRecord.status == status)
            .order_by(*order, ServiceRecord.id)
            .limit(limit)
        )
        return session.execute(query).all()

    def row(record: ServiceRecord, unit: str | None, closed: bool) -> dict:
        shown = {
            "登记号": record.record_no,
            "类别": vocab.label(vocab.SERVICE_KINDS, record.kind),
            "渠道": vocab.label(vocab.SERVICE_CHANNELS, record.channel),
            "房号": unit,
            "受理时间": record.opened_at,
            "摘要": record.summary,
        }
        if closed:
            shown |= {"关闭时间": record.closed_at, "处理结果": record.result}
        return shown

    open_records = records("open", newest_first=False)
    states = _record_states(session, [r.record_no for r, _ in open_records])
    open_rows = []
    for record, unit in open_records:
        state = states.get(record.record_no, {})
        open_rows.append(
            row(record, unit, False)
            | {
                "当前步骤": state.get("step_label"),
                "时限": state.get("due_at"),
                "负责人": state.get("owner"),
            }
        )
    past_rows = [
        row(r, u, True) for r, u in records("closed", newest_first=True, limit=PAST_SERVICE_ON_CARD)
    ]
    past_total = session.scalar(
        select(func.count())
        .select_from(ServiceRecord)
        .where(ServiceRecord.household_id == household.id, ServiceRecord.status == "closed")
    )
    note = (
        [("说明", f"共 {past_total} 条，显示最近 {PAST_SERVICE_ON_CARD} 条")]
        if past_total > len(past_rows)
        else []
    )
    return [
        CardSection(
            "处理中的服务记录",
            columns=[
                "登记号",
                "类别",
                "渠道",
                "房号",
                "受理时间",
                "当前步骤",
                "时限",
                "负责人",
                "摘要",
            ],
            rows=open_rows,
        ),
        CardSection(
            "历史服务记录",
            lines=note,
            columns=["登记号", "类别", "渠道", "房号", "受理时间", "关闭时间", "摘要", "处理结果"],
            rows=past_rows,
        ),
    ]
