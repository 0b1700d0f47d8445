"""Normalising and checking Chinese personal identifiers: resident ID numbers (GB 11643) and
phone numbers. Pure functions, used by import, the CLI and the demo alike."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from crm.core.clock import local_today

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_MOBILE = re.compile(r"1[3-9]\d{9}")
_LANDLINE = re.compile(r"0\d{2,3}-?\d{7,8}(-\d{1,6})?")


def halfwidth(text: str) -> str:
    """Full-width digits, letters and punctuation (１３８、－) to their ASCII forms."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def id_check_digit(first17: str) -> str:
    """The GB 11643-1999 check character for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS))
    return _ID_CHECK[total % 11]


def normalize_id_number(raw: str) -> str:
    """Return the canonical 18-character ID number or raise ValueError with the reason."""
    number = halfwidth(raw).strip().replace(" ", "").upper()
    if len(number) != 18:
        raise ValueError(f"身份证号应为 18 位，实际 {len(number)} 位")
    if not (number[:17].isdigit() and (number[17].isdigit() or number[17] == "X")):
        raise ValueError("身份证号前 17 位应为数字，末位为数字或 X")
    try:
        birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise ValueError("身份证号中的出生日期无效") from None
    if not dt.date(1900, 1, 1) <= birth <= local_today():
        raise ValueError("身份证号中的出生日期超出合理范围")
    if id_check_digit(number[:17]) != number[17]:
        raise ValueError("身份证号校验位不正确（GB 11643）")
    return number


def normalize_phone(raw: str, mobile_only: bool = False) -> str:
    """A mainland mobile number (11 digits) or, unless mobile_only, a landline like
    010-12345678; separators, spaces and a +86/0086 prefix are removed. ValueError if not."""
    text = halfwidth(raw).strip()
    digits = re.sub(r"[\s()（）.]", "", text)
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :].lstrip("-")
    compact = digits.replace("-", "")
    if _MOBILE.fullmatch(compact):
        return compact
    if mobile_only:
        raise ValueError("不是有效的大陆手机号（应为 1 开头的 11 位数字）")
    if _LANDLINE.fullmatch(digits):
        return (
            digits
            if "-" in digits
            else f"{digits[:3]}-{digits[3:]}"
            if digits[1] in "12"
            else f"{digits[:4]}-{digits[4:]}"
        )
    raise ValueError("不是有效的电话号码（手机 11 位，座机如 010-12345678）")
