"""Resident ID numbers (GB 11643) and phone numbers: normalising and checking."""

import datetime as dt

import pytest

from crm.core.identity import halfwidth, id_check_digit, normalize_id_number, normalize_phone


def test_check_digit_of_the_published_example():
    assert id_check_digit("11010519491231002") == "X"
    # 4·7+4·9+3·5+4·4+1·2+9·1+9·6+1·9+1·5+1·2 = 176; 176 mod 11 = 0 -> "1"
    assert id_check_digit("44030419900101001") == "1"


@pytest.mark.parametrize(
    "raw",
    [
        "11010519491231002X",
        "11010519491231002x",
        " 110105 19491231 002X ",
        "１１０１０５１９４９１２３１００２Ｘ",
    ],
)
def test_id_number_is_normalised(raw):
    assert normalize_id_number(raw) == "11010519491231002X"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("110105194912310021", "校验位"),
        ("1101051949123100", "18 位"),
        ("11010519491331002X", "出生日期无效"),
        ("11010518991231002X", "合理范围"),
        ("1101051949123100AX", "前 17 位"),
    ],
)
def test_bad_id_numbers_say_why(raw, reason):
    if reason == "合理范围":
        raw = raw[:17] + id_check_digit(raw[:17])
    with pytest.raises(ValueError, match=reason):
        normalize_id_number(raw)


# 18:00 UTC on 2 December is already 02:00 on 3 December in Shanghai, the business zone.
@pytest.mark.time_machine(dt.datetime(2026, 12, 2, 18, 0, tzinfo=dt.UTC))
def test_future_birth_date_is_refused_by_the_business_calendar():
    today = "11010520261203001"  # born today in Shanghai: fine
    assert normalize_id_number(today + id_check_digit(today)).startswith(today)
    tomorrow = "11010520261204001"
    with pytest.raises(ValueError, match="合理范围"):
        normalize_id_number(tomorrow + id_check_digit(tomorrow))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "13812345678"),
        ("138 1234 5678", "13812345678"),
        ("+86 138-1234-5678", "13812345678"),
        ("0086-13812345678", "13812345678"),
        ("１３８１２３４５６７８", "13812345678"),
        ("010-12345678", "010-12345678"),
        ("01012345678", "010-12345678"),
        ("075512345678", "0755-12345678"),
        ("（０２１）６２３４５６７８", "021-62345678"),
    ],
)
def test_phones_are_normalised(raw, expected):
    assert normalize_phone(raw) == expected


def test_mobile_only_refuses_landlines_and_bad_numbers():
    assert normalize_phone("13812345678", mobile_only=True) == "13812345678"
    with pytest.raises(ValueError, match="手机号"):
        normalize_phone("010-12345678", mobile_only=True)
    with pytest.raises(ValueError, match="手机号"):
        normalize_phone("12812345678", mobile_only=True)
    with pytest.raises(ValueError, match="电话号码"):
        normalize_phone("12345")


def test_halfwidth_leaves_ascii_alone_and_converts_full_width():
    assert halfwidth("H001") == "H001"
    assert halfwidth("Ｈ００１－Ａ") == "H001-A"
