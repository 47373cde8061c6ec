"""Login limit rules without a database: CIDR ranges (IPv4, IPv6), weekly windows in wall time,
across midnight and across Europe/Lisbon's daylight-saving changes (last Sunday of March and of
October: 2026-03-29 01:00 UTC and 2026-10-25 01:00 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from confide.login_limits.rules import NETWORK, TIME, Rules, Window, evaluate, parse_range, parse_time
from confide.login_limits.schemas import LoginLimitsIn


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def lisbon(*windows: Window) -> Rules:
    return Rules(windows=windows, timezone="Europe/Lisbon")


# ---------------------------------------------------------------- ranges
def test_ipv4_and_ipv6_ranges() -> None:
    rules = Rules(ranges=(parse_range("192.0.2.0/24"), parse_range("2001:db8::/32"), parse_range("198.51.100.7")))
    assert rules.allows_address("192.0.2.1")
    assert rules.allows_address("192.0.2.255")
    assert not rules.allows_address("192.0.3.1")
    assert rules.allows_address("2001:db8:ffff::1")
    assert not rules.allows_address("2001:db9::1")
    assert rules.allows_address("198.51.100.7")  # a single address is a /32
    assert not rules.allows_address("198.51.100.8")
    assert rules.allows_address("::ffff:192.0.2.9")  # IPv4 seen through a dual-stack socket
    assert not rules.allows_address(None)  # unknown address: in no range
    assert not rules.allows_address("testclient")
    assert Rules().allows_address(None)  # no ranges: any address


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.0/33", "is not an IP address or CIDR range"),
        ("300.1.2.3", "is not an IP address or CIDR range"),
        ("example.com", "is not an IP address or CIDR range"),
        ("10.1.2.3/8", "did you mean 10.0.0.0/8?"),
        ("2001:db8::1/32", "did you mean 2001:db8::/32?"),
    ],
)
def test_bad_ranges_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("?", r"\?").replace(".", r"\.")):
        parse_range(text)


# ---------------------------------------------------------------- windows
def test_times_and_window_validation() -> None:
    assert parse_time("9:05") == 545
    assert parse_time("24:00", end=True) == 1440
    for bad in ("24:00", "12:60", "noon", "12", "1:5", "-1:00", "123:00"):
        with pytest.raises(ValueError, match="is not a time"):
            parse_time(bad)
    with pytest.raises(ValueError, match="is not after the start"):
        Window.build(["mon"], "17:00", "09:00")
    with pytest.raises(ValueError, match="is not after the start"):
        Window.build(["mon"], "09:00", "09:00")
    with pytest.raises(ValueError, match="at most 24 hours"):
        Window.build(["mon"], "09:00", "10:00", overnight=True)
    with pytest.raises(ValueError, match="at least one day"):
        Window.build([], "09:00", "10:00")
    with pytest.raises(ValueError, match="unknown day"):
        Window.build(["funday"], "09:00", "10:00")
    assert Window.build(["mon"], "18:00", "24:00").contains(0, 23 * 60 + 59)


def test_window_across_midnight_belongs_to_the_day_it_starts() -> None:
    night = Window.build(["fri"], "22:00", "06:00", overnight=True)
    fri, sat, sun = 4, 5, 6
    assert not night.contains(fri, 21 * 60 + 59)
    assert night.contains(fri, 22 * 60)
    assert night.contains(sat, 5 * 60 + 59)
    assert not night.contains(sat, 6 * 60)
    assert not night.contains(sat, 22 * 60)  # Saturday is not a starting day
    assert not night.contains(sun, 1 * 60)
    sunday_night = Window.build(["sun"], "23:00", "01:00", overnight=True)
    assert sunday_night.contains(0, 30)  # Monday 00:30: the week wraps around


def test_office_hours_follow_the_wall_clock_across_the_spring_change() -> None:
    rules = lisbon(Window.build(["sun"], "09:00", "17:00"))
    # A winter Sunday (UTC+0): 08:30 UTC is 08:30 in Lisbon.
    assert evaluate([rules], None, utc("2026-03-22T08:30")) == TIME
    assert evaluate([rules], None, utc("2026-03-22T16:30")) is None
    # The Sunday clocks go forward (UTC+1 from 01:00 UTC): the same instants are an hour later.
    assert evaluate([rules], None, utc("2026-03-29T08:30")) is None
    assert evaluate([rules], None, utc("2026-03-29T07:59")) == TIME
    assert evaluate([rules], None, utc("2026-03-29T08:00")) is None  # 09:00 WEST
    assert evaluate([rules], None, utc("2026-03-29T15:59")) is None
    assert evaluate([rules], None, utc("2026-03-29T16:00")) == TIME  # 17:00 WEST


def test_a_night_window_over_each_change_is_shorter_or_longer_in_real_time() -> None:
    rules = lisbon(Window.build(["sat"], "22:00", "06:00", overnight=True))
    # Spring: Saturday 22:00 WET (22:00 UTC) to Sunday 06:00 WEST (05:00 UTC): 7 real hours.
    assert not rules.allows_time(utc("2026-03-28T21:59"))
    assert rules.allows_time(utc("2026-03-28T22:00"))
    assert rules.allows_time(utc("2026-03-29T00:59"))  # 00:59 WET
    assert rules.allows_time(utc("2026-03-29T01:00"))  # 02:00 WEST (01:xx never happens)
    assert rules.allows_time(utc("2026-03-29T04:59"))  # 05:59 WEST
    assert not rules.allows_time(utc("2026-03-29T05:00"))  # 06:00 WEST
    # Autumn: Saturday 22:00 WEST (21:00 UTC) to Sunday 06:00 WET (06:00 UTC): 9 real hours.
    assert not rules.allows_time(utc("2026-10-24T20:59"))
    assert rules.allows_time(utc("2026-10-24T21:00"))
    assert rules.allows_time(utc("2026-10-25T05:59"))
    assert not rules.allows_time(utc("2026-10-25T06:00"))


def test_the_repeated_and_the_skipped_hour() -> None:
    one_am = lisbon(Window.build(["sun"], "01:00", "02:00"))
    # October: 01:00-02:00 happens twice (00:xx UTC in summer time, 01:xx UTC in winter time).
    assert not one_am.allows_time(utc("2026-10-24T23:59"))  # 00:59 WEST
    assert one_am.allows_time(utc("2026-10-25T00:30"))  # 01:30 WEST
    assert one_am.allows_time(utc("2026-10-25T01:30"))  # 01:30 WET, again
    assert not one_am.allows_time(utc("2026-10-25T02:00"))  # 02:00 WET
    # March: 01:00-02:00 does not exist; no instant of that Sunday is inside it.
    assert not one_am.allows_time(utc("2026-03-29T00:59"))  # 00:59 WET
    assert not one_am.allows_time(utc("2026-03-29T01:00"))  # 02:00 WEST


def test_role_and_operator_limits_must_both_allow() -> None:
    role = Rules(ranges=(parse_range("10.0.0.0/8"),))
    own = Rules(ranges=(parse_range("10.1.0.0/16"),), windows=(Window.build(["mon"], "09:00", "17:00"),))
    monday_ten = utc("2026-03-23T10:00")
    assert evaluate([role, own], "10.1.2.3", monday_ten) is None
    assert evaluate([role, own], "10.2.0.1", monday_ten) == NETWORK  # the role allows it, the operator not
    assert evaluate([role, own], "192.0.2.1", monday_ten) == NETWORK
    assert evaluate([role, own], "10.1.2.3", utc("2026-03-23T18:00")) == TIME
    assert evaluate([role, own], "192.0.2.1", utc("2026-03-23T18:00")) == NETWORK  # network first
    assert evaluate([], None, monday_ten) is None


def test_limits_input_is_canonical_and_refuses_bad_zones() -> None:
    data = LoginLimitsIn.model_validate(
        {"ranges": [" 2001:DB8::/32 ", "192.0.2.0/24", "192.0.2.0/24", ""], "timezone": "Europe/Lisbon",
         "windows": [{"days": ["mon", "tue"], "start": "9:00", "end": "17:30"}]}
    )
    assert data.stored() == {
        "ranges": ["2001:db8::/32", "192.0.2.0/24"],
        "windows": [{"days": ["mon", "tue"], "start": "09:00", "end": "17:30", "overnight": False}],
        "timezone": "Europe/Lisbon",
    }
    for zone in ("Mars/Olympus", "../../etc/passwd", "localtime", ""):
        with pytest.raises(ValueError, match="unknown time zone"):
            LoginLimitsIn.model_validate({"timezone": zone})
