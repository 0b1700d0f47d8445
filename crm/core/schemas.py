"""Marshmallow schemas at the import/export edge: the single source of truth for column names
(English name = field name, Chinese aliases in `metadata["zh"]`), types, required columns and
validators.

Each field class knows how to read one spreadsheet cell (`parse`), so `Schema.load` and the
fast per-column converters of `compile_schema` (used by bulk import) accept exactly the same
input and give the same messages.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, DecimalException
from typing import Any, ClassVar

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from crm.core import vocab
from crm.core.clock import as_local
from crm.core.identity import halfwidth, normalize_id_number, normalize_phone
from crm.core.outfiles import FORMULA_STARTS

EMPTY = "不能为空"
# Free text (备注, 摘要, 处理结果) is an unbounded TEXT column; a cell longer than this is a
# mistake or an attack, not a note.
MAX_TEXT = 10_000
# C0 and C1 control characters, DEL and lone surrogates: NUL makes PostgreSQL refuse the whole
# statement, ESC sequences reach the terminal of whoever views the value later, and a lone
# surrogate cannot be stored as UTF-8. Multi-line text keeps tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def check_characters(text: str, multiline: bool = False) -> None:
    """ValueError(reason) if `text` holds a control character (see _CONTROL). Callers test
    `text.isprintable()` first: it is true for almost every cell and costs far less."""
    found = (_CONTROL_MULTILINE if multiline else _CONTROL).search(text)
    if found is not None:
        raise ValueError(f"含有控制字符或无效字符 U+{ord(found.group()):04X}，请删去后重新导入")


def unquoted(text: str) -> str:
    """Our own exports put a quote before a cell that could run as a formula
    (crm.core.outfiles.neutralised); reading it back takes the quote off again."""
    if text[:1] == "'" and text[1:2] and text[1:2] in FORMULA_STARTS:
        return text[1:]
    return text


def shown(text: str) -> str:
    """A cell quoted in a reject reason: long ones cut, so the reject file stays readable."""
    return text if len(text) <= 40 else text[:40] + "…"


def cell_text(value: Any) -> str:
    """A non-empty cell as text: XLSX numbers like 13812345678.0 lose the '.0'."""
    if value.__class__ is str:
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


class CellField(fields.Field):
    """A field that reads one cell. `parse_text` takes trimmed, non-empty text; `parse` any
    other non-empty value (a number or date from XLSX/JSON). Both return the value or raise
    ValueError(reason)."""

    multiline = False

    def __init__(self, *, zh: tuple[str, ...] = (), personal: bool = False, **kwargs):
        metadata = {"zh": zh, "personal": personal} | dict(kwargs.pop("metadata", {}))
        kwargs.setdefault("allow_none", not kwargs.get("required", False))
        # A person reads these: a missing or null required value is simply "empty".
        kwargs["error_messages"] = {"required": EMPTY, "null": EMPTY} | kwargs.get(
            "error_messages", {}
        )
        super().__init__(metadata=metadata, **kwargs)

    def parse_text(self, text: str) -> Any:
        return text

    def parse(self, value: Any) -> Any:
        return self.parse_text(cell_text(value).strip())

    def fast_converter(
        self, general: Callable[[Any], Any], check: Callable[[Any], None] | None
    ) -> Callable[[Any], Any]:
        """The bulk-import converter: `general` handles every case; a subclass may put a
        shortcut for the common cell in front of it (same result, fewer calls)."""
        return general

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "":
            if self.required:
                raise ValidationError(EMPTY)
            return None
        try:
            if isinstance(value, str):
                value = unquoted(value)
                if not value.isprintable():
                    check_characters(value, self.multiline)
                return self.parse_text(value)
            return self.parse(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def _serialize(self, value, attr, obj, **kwargs):
        return value


class Text(CellField):
    """Free text on one line (names): only trimmed, written as typed."""

    def fast_converter(self, general, check):
        high = _length_only(check)
        if high is None:
            return general
        required = self.required

        # The common cell, printable text of allowed length, in one call: the length is
        # checked here, not by a call to `check`. Anything else takes the general way, which
        # gives the reason.
        def convert(raw: Any) -> Any:
            if raw.__class__ is str and raw.isprintable():
                text = raw.strip()
                if text:
                    if text[0] != "'" and len(text) <= high:
                        return text
                elif not required:
                    return None
            return general(raw)

        return convert


class Note(Text):
    """Free text that may run over several lines (备注, 摘要, 处理结果)."""

    multiline = True


class Code(CellField):
    """Codes and numbers typed by people (户号, 合同号, 房号): full-width forms to ASCII."""

    def parse_text(self, text: str) -> str:
        return text if text.isascii() else unicodedata.normalize("NFKC", text).strip()

    def fast_converter(self, general, check):
        high = _length_only(check)
        if high is None:

            def convert(raw: Any) -> Any:
                if raw.__class__ is str and raw.isascii() and raw.isprintable():
                    text = raw.strip()
                    if text and text[0] != "'":
                        if check is not None:
                            check(text)
                        return text
                return general(raw)

            return convert

        def convert_checked(raw: Any) -> Any:
            # The length checked here, not by a call to `check`; too long takes the general
            # way, which gives the reason.
            if raw.__class__ is str and raw.isascii() and raw.isprintable():
                text = raw.strip()
                if text and text[0] != "'" and len(text) <= high:
                    return text
            return general(raw)

        return convert_checked


# What every integer column holds (INTEGER is 32 bits on PostgreSQL).
_INT_LOW, _INT_HIGH = -(2**31), 2**31 - 1


def _int_in_range(value: int) -> int:
    if not _INT_LOW <= value <= _INT_HIGH:
        raise ValueError(f"整数超出范围（{_INT_LOW} 到 {_INT_HIGH}）")
    return value


class Int(CellField):
    def parse_text(self, text: str) -> int:
        if len(text) > 30:  # int() refuses over 4,300 digits, with an English message
            raise ValueError(f"“{shown(text)}”不是整数")
        try:
            value = int(text)  # int() reads full-width digits too
        except ValueError:
            raise ValueError(f"“{shown(text)}”不是整数") from None
        return _int_in_range(value)

    def fast_converter(self, general, check):
        def convert(raw: Any) -> Any:
            # Up to 9 digits always fits the column; longer text takes the checked way.
            if raw.__class__ is str and raw.isdecimal() and len(raw) < 10:
                value = int(raw)
                if check is not None:
                    check(value)
                return value
            return general(raw)

        return convert

    def parse(self, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            return _int_in_range(int(value))
        if isinstance(value, int) and not isinstance(value, bool):
            return _int_in_range(value)
        return super().parse(value)


class Flag(CellField):
    WORDS: ClassVar[dict[str, bool]] = {
        "是": True,
        "否": False,
        "y": True,
        "n": False,
        "yes": True,
        "no": False,
        "true": True,
        "false": False,
        "t": True,
        "f": False,
        "1": True,
        "0": False,
    }

    def parse_text(self, text: str) -> bool:
        value = self.WORDS.get(text)
        if value is None:
            value = self.WORDS.get(halfwidth(text).casefold())
        if value is None:
            raise ValueError(f"“{shown(text)}”不是是/否（可写 是/否、Y/N、true/false、1/0）")
        return value

    def parse(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        return super().parse(value)

    def fast_converter(self, general, check):
        words = self.WORDS

        def convert(raw: Any) -> Any:
            value = words.get(raw) if raw.__class__ is str else None
            return general(raw) if value is None else value

        return convert


class Vocab(CellField):
    """A controlled vocabulary: the code or the Chinese label (or a common synonym)."""

    def __init__(self, vocabulary: dict[str, str], **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = vocabulary
        self.table = vocab.lookup_table(vocabulary)

    def parse_text(self, text: str) -> str:
        code = self.table.get(text)
        if code is None:
            folded = halfwidth(text).casefold()
            code = self.table.get(folded) or self.table.get(folded.replace(" ", ""))
        if code is None:
            choices = "、".join(f"{zh}（{code}）" for code, zh in self.vocabulary.items())
            raise ValueError(f"不认识的取值“{shown(text)}”；可用：{choices}")
        return code

    def fast_converter(self, general, check):
        if check is not None:
            return general
        table = self.table

        def convert(raw: Any) -> Any:
            code = table.get(raw) if raw.__class__ is str else None
            return general(raw) if code is None else code

        return convert


class Mobile(CellField):
    def parse_text(self, text: str) -> str:
        return normalize_phone(text, mobile_only=True)


class Phone(CellField):
    def parse_text(self, text: str) -> str:
        return normalize_phone(text)


class IdNumber(CellField):
    def parse_text(self, text: str) -> str:
        return normalize_id_number(text)


_DATE = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:(?:\s+|T)(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)
_COMPACT = re.compile(r"(\d{4})(\d{2})(\d{2})")
# Excel's day 0; XLSX cells that hold a date but lack a date format arrive as serial numbers.
_EXCEL_EPOCH = dt.date(1899, 12, 30)


def _parse_moment(value: Any) -> tuple[dt.date, dt.time | None, dt.tzinfo | None]:
    if isinstance(value, dt.datetime):
        return value.date(), value.timetz(), value.tzinfo
    if isinstance(value, dt.date):
        return value, None, None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 20000 < value < 80000:
            moment = dt.datetime.combine(_EXCEL_EPOCH, dt.time()) + dt.timedelta(days=value)
            return moment.date(), (moment.time() if value % 1 else None), None
        value = cell_text(value)
    text = halfwidth(cell_text(value)).strip()
    match = _DATE.fullmatch(text) or _COMPACT.fullmatch(text)
    if match is None:
        raise ValueError(
            f"“{shown(text)}”不是日期（如 2024-03-05、2024/3/5、2024年3月5日、20240305）"
        )
    parts = match.groups() + (None,) * (8 - len(match.groups()))
    year, month, day, hour, minute, second, fraction, zone = parts
    try:
        date = dt.date(int(year), int(month), int(day))
        time = None
        if hour is not None:
            micro = int((fraction or "0").ljust(6, "0"))
            time = dt.time(int(hour), int(minute), int(second or 0), micro)
    except ValueError:
        raise ValueError(f"“{shown(text)}”不是有效的日期") from None
    tz = None
    if zone == "Z":
        tz = dt.UTC
    elif zone:
        hours, minutes = int(zone[1:3]), int(zone[-2:])
        if hours > 14 or minutes > 59:
            raise ValueError(f"“{shown(text)}”的时区偏移无效（应在 -14:00 到 +14:00 之间）")
        tz = dt.timezone((1 if zone[0] == "+" else -1) * dt.timedelta(hours=hours, minutes=minutes))
    return date, time, tz


_FIRST_DAY, _LAST_DAY = dt.date(1900, 1, 1), dt.date(2200, 12, 31)


def _check_day(date: dt.date) -> dt.date:
    if not _FIRST_DAY <= date <= _LAST_DAY:
        raise ValueError(f"日期 {date} 超出合理范围（1900 到 2200 年）")
    return date


class Day(CellField):
    """A date; a time part, if any, is ignored (Excel often writes '2024/3/5 0:00')."""

    def parse_text(self, text: str) -> dt.date:
        if len(text) == 10:
            try:
                return _check_day(dt.date.fromisoformat(text))
            except ValueError:
                pass
        return self.parse(text)

    def parse(self, value: Any) -> dt.date:
        date, _time, _tz = _parse_moment(value)
        return _check_day(date)


class Moment(CellField):
    """A date and time; without a UTC offset it is read in the business zone (crm.core.clock)."""

    def parse_text(self, text: str) -> dt.datetime:
        return self.parse(text)

    def parse(self, value: Any) -> dt.datetime:
        date, time, tz = _parse_moment(value)
        # Also keeps the conversion to UTC away from year 1 and year 9999.
        _check_day(date)
        moment = dt.datetime.combine(date, (time or dt.time()).replace(tzinfo=None))
        if tz is None:
            tz = time.tzinfo if time is not None and time.tzinfo else None
        return moment.replace(tzinfo=tz) if tz else as_local(moment)


_CENT = Decimal("0.01")
_TEN_THOUSAND = Decimal(10000)


class Money(CellField):
    """An amount in yuan: '¥1,234,567.00', '123.5万', '1234567元'. `digits` is the precision
    of the column (NUMERIC(digits, 2)): a larger value would overflow it on PostgreSQL."""

    STRIP = str.maketrans("", "", "¥￥,，元 ")
    UNIT = "万"
    WHAT = "金额"

    def __init__(self, *, digits: int = 14, **kwargs):
        super().__init__(**kwargs)
        self.limit = Decimal(10) ** (digits - 2)  # two of the digits are the cents

    def parse_text(self, text: str) -> Decimal:
        return self.parse(text)

    def parse(self, value: Any) -> Decimal:
        if isinstance(value, bool):
            raise ValueError(f"{self.WHAT}应为数字")  # noqa: TRY004 - ValueError carries reasons
        if isinstance(value, int | Decimal):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value))
        else:
            text = halfwidth(cell_text(value)).translate(self.STRIP)
            scale = 1
            for suffix in self.suffixes():
                if text.endswith(suffix):
                    text = text[: -len(suffix)]
                    scale = _TEN_THOUSAND if suffix == "万" else 1
                    break
            try:
                number = Decimal(text) * scale
            except DecimalException:  # not a number, or an exponent past the context's range
                raise ValueError(f"“{shown(cell_text(value))}”不是有效的{self.WHAT}") from None
        if not number.is_finite() or number < 0:
            raise ValueError(f"{self.WHAT}应为非负数")
        # Compared before rounding: quantize() itself fails past 28 digits (1e30).
        if number >= self.limit or (rounded := number.quantize(_CENT, ROUND_HALF_UP)) >= self.limit:
            raise ValueError(f"{self.WHAT}过大：应小于 {self.limit:,}")
        return rounded

    def suffixes(self) -> tuple[str, ...]:
        return ("万",)


class Area(Money):
    """A floor area in square metres: '89.5', '89.5㎡', '89.5平方米'."""

    STRIP = str.maketrans("", "", ", ")
    WHAT = "面积"

    def suffixes(self) -> tuple[str, ...]:
        return ("平方米", "平米", "m²", "m2", "㎡")


def _length(limit: int) -> validate.Length:
    return validate.Length(max=limit, error="不能超过 {max} 个字符")


def _range(low: int, high: int) -> validate.Range:
    return validate.Range(min=low, max=high, error="应在 {min} 到 {max} 之间")


class ImportSchema(Schema):
    """Base for the import/export schemas: unknown columns are reported, not loaded."""

    class Meta:
        unknown = EXCLUDE
        ordered = True


HOUSEHOLD_CODE_ZH = ("户号", "客户编号", "客户编码")


class HouseholdSchema(ImportSchema):
    code = Code(required=True, validate=_length(40), zh=HOUSEHOLD_CODE_ZH)
    name = Text(required=True, validate=_length(100), zh=("姓名", "客户姓名", "户名", "客户名称"))
    status = Vocab(vocab.HOUSEHOLD_STATUS, zh=("客户状态", "状态", "客户类型"))
    project = Text(validate=_length(100), zh=("项目", "小区", "楼盘", "所属项目"))
    age = Int(validate=_range(0, 120), zh=("年龄",))
    income_band = Vocab(vocab.INCOME_BANDS, zh=("家庭收入", "收入", "家庭年收入", "收入档次"))
    housing = Vocab(vocab.HOUSING, zh=("住房情况", "住房状况", "居住情况"))
    education = Vocab(vocab.EDUCATION, zh=("学历", "教育程度", "文化程度"))
    occupation = Text(validate=_length(100), zh=("职业",))
    club_activities = Text(validate=_length(200), zh=("社团活动", "俱乐部活动"))
    member_tier = Vocab(vocab.MEMBER_TIERS, zh=("会员等级", "会员级别"))
    consent_contact = Flag(zh=("同意联系", "允许联系"))
    consent_marketing = Flag(zh=("同意营销", "接受营销"))
    note = Note(validate=_length(MAX_TEXT), zh=("备注",))


class MemberSchema(ImportSchema):
    household_code = Code(required=True, validate=_length(40), zh=HOUSEHOLD_CODE_ZH)
    name = Text(required=True, validate=_length(100), zh=("姓名", "成员姓名"))
    role = Vocab(vocab.MEMBER_ROLES, zh=("身份", "成员身份", "角色", "关系"))
    phone = Mobile(personal=True, zh=("手机", "手机号", "手机号码", "移动电话"))
    alt_phone = Phone(personal=True, zh=("备用电话", "其他电话", "座机", "固定电话", "电话"))
    id_number = IdNumber(personal=True, zh=("身份证号", "身份证", "身份证号码", "证件号码"))


class PurchaseSchema(ImportSchema):
    contract_no = Code(required=True, validate=_length(50), zh=("合同号", "合同编号"))
    household_code = Code(required=True, validate=_length(40), zh=HOUSEHOLD_CODE_ZH)
    project = Text(validate=_length(100), zh=("项目", "小区", "楼盘"))
    building = Code(validate=_length(50), zh=("楼栋", "栋", "楼号"))
    unit = Code(validate=_length(30), zh=("房号", "房间号", "单元号"))
    purchase_date = Day(required=True, zh=("购房日期", "成交日期", "签约日期"))
    floor_area = Area(digits=10, zh=("面积", "建筑面积"))
    amount = Money(digits=14, required=True, zh=("成交金额", "金额", "成交价", "总价"))
    channel = Vocab(vocab.PURCHASE_CHANNELS, zh=("渠道", "成交渠道", "来源渠道"))
    referrer_code = Code(validate=_length(40), zh=("推荐人户号", "推荐人编号", "推荐人"))
    promotions_attended = Int(validate=_range(0, 1000), zh=("参加推介次数", "参加活动次数"))
    handover_date = Day(zh=("交房日期", "入伙日期"))


class ServiceSchema(ImportSchema):
    record_no = Code(required=True, validate=_length(50), zh=("登记号", "登记编号", "单号"))
    household_code = Code(required=True, validate=_length(40), zh=HOUSEHOLD_CODE_ZH)
    kind = Vocab(vocab.SERVICE_KINDS, required=True, zh=("类别", "服务类别", "类型"))
    channel = Vocab(vocab.SERVICE_CHANNELS, zh=("渠道", "受理渠道", "来源"))
    status = Vocab(vocab.SERVICE_STATUS, zh=("状态", "处理状态"))
    opened_at = Moment(required=True, zh=("登记时间", "受理时间"))
    closed_at = Moment(zh=("关闭时间", "结案时间"))
    summary = Note(
        required=True, validate=_length(MAX_TEXT), zh=("摘要", "内容", "问题描述", "事由")
    )
    result = Note(validate=_length(MAX_TEXT), zh=("处理结果", "结果"))
    project = Text(validate=_length(100), zh=("项目", "小区", "楼盘"))
    building = Code(validate=_length(50), zh=("楼栋", "栋", "楼号"))
    unit = Code(validate=_length(30), zh=("房号", "房间号", "单元号"))


SCHEMAS: dict[str, type[ImportSchema]] = {
    "households": HouseholdSchema,
    "members": MemberSchema,
    "purchases": PurchaseSchema,
    "service": ServiceSchema,
}
KIND_LABELS = {
    "households": "客户家庭",
    "members": "家庭成员",
    "purchases": "成交",
    "service": "服务记录",
}


@dataclass(frozen=True)
class Column:
    """One schema field compiled for bulk reading."""

    name: str
    zh: tuple[str, ...]
    required: bool
    personal: bool
    convert: Callable[[Any], Any]  # raw cell -> value or None; raises ValueError(reason)


def _fast_check(validator: Callable) -> Callable[[Any], None]:
    """A cheap pre-test for common validators; the real validator runs only on failure, so
    its message (and marshmallow's semantics) stay the reference."""

    def fail(value: Any) -> None:
        try:
            validator(value)
        except ValidationError as exc:
            raise ValueError("；".join(map(str, exc.messages))) from None

    if isinstance(validator, validate.Length) and validator.equal is None:
        low, high = validator.min or 0, validator.max if validator.max is not None else 1 << 62

        def check_length(value: Any) -> None:
            if not low <= len(value) <= high:
                fail(value)

        check_length.length_bounds = (low, high)  # for converters that test it inline
        return check_length
    if (
        isinstance(validator, validate.Range)
        and validator.min_inclusive
        and validator.max_inclusive
    ):
        low, high = validator.min, validator.max

        def check_range(value: Any) -> None:
            if (low is not None and value < low) or (high is not None and value > high):
                fail(value)

        return check_range
    return fail


def _length_only(check: Callable[[Any], None] | None) -> int | None:
    """The most characters `check` lets through when a length is all it checks and any
    non-empty text meets its minimum (no check: no limit); None when it checks more."""
    if check is None:
        return sys.maxsize
    bounds = getattr(check, "length_bounds", None)
    if bounds is None or bounds[0] > 1:
        return None
    return bounds[1]


def _all(checks: tuple[Callable[[Any], None], ...]) -> Callable[[Any], None] | None:
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]

    def check_all(value: Any) -> None:
        for check in checks:
            check(value)

    return check_all


def _converter(field: fields.Field) -> Callable[[Any], Any]:
    """The fastest function equivalent to `field.deserialize` for one cell."""
    if isinstance(field, CellField):
        parse = field.parse
        # Text keeps the trimmed string as it is: no call at all.
        parse_text = None if type(field).parse_text is CellField.parse_text else field.parse_text
    else:  # any plain marshmallow field still works, just slower

        def parse(value: Any) -> Any:
            try:
                return field.deserialize(value)
            except ValidationError as exc:
                raise ValueError("；".join(map(str, exc.messages))) from None

        parse_text = parse
    check = _all(tuple(_fast_check(v) for v in field.validators))
    required = field.required
    multiline = getattr(field, "multiline", False)

    def convert(raw: Any) -> Any:
        if raw.__class__ is str:
            value = raw.strip()
            if value:
                if value[0] == "'":
                    value = unquoted(value)
                if not value.isprintable():
                    check_characters(value, multiline)
                if parse_text is not None:
                    value = parse_text(value)
            else:
                value = None
        elif raw is None:
            value = None
        else:
            value = parse(raw)
        if value is None:
            if required:
                raise ValueError(EMPTY)
            return None
        if check is not None:
            check(value)
        return value

    if isinstance(field, CellField):
        return field.fast_converter(convert, check)
    return convert


def compile_schema(schema_class: type[Schema]) -> dict[str, Column]:
    """English name -> Column, built once per import from the marshmallow declarations."""
    schema = schema_class()
    return {
        field.data_key or name: Column(
            name=field.data_key or name,
            zh=tuple(field.metadata.get("zh", ())),
            required=field.required,
            personal=bool(field.metadata.get("personal")),
            convert=_converter(field),
        )
        for name, field in schema.load_fields.items()
    }


def header_key(text: str) -> str:
    """How headers are compared: trimmed, NFKC (full-width to ASCII), case-folded."""
    return unicodedata.normalize("NFKC", text.replace("\ufeff", "")).strip().casefold()


def header_index(columns: dict[str, Column]) -> dict[str, str]:
    """Every accepted header spelling (normalised) -> English name."""
    index = {}
    for column in columns.values():
        for spelling in (column.name, *column.zh):
            index.setdefault(header_key(spelling), column.name)
    return index
