"""Login limits as rules: allowed address ranges and weekly time windows, and their evaluation.

Pure and small: no database, no clock of its own (the caller passes the instant). One ``Rules``
is what one role or one operator is limited to:

- ``ranges``: IPv4 and IPv6 CIDR ranges; the address must be in one of them (none: any address;
  an unknown address is in no range);
- ``windows``: weekly windows in ``timezone`` (an IANA name); the time must be in one of them
  (none: any time). A window is a set of days and a start and end *wall-clock* time; it is
  evaluated in local wall time (``instant.astimezone(zone)``), so "09:00-17:00" means nine to five
  on the office clock in winter and in summer alike, and a day that is 23 or 25 hours long
  changes nothing. A window that ``overnight`` ends on the next day: "Mon 22:00-06:00 overnight"
  covers Monday 22:00 to Tuesday 06:00 (the days are those the window *starts* on).

Several ``Rules`` (the role's and the operator's own) must *all* be satisfied (ADR 0016).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
DAY_NAMES = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}
MINUTES_PER_DAY = 24 * 60

NETWORK = "network"  # denial reasons
TIME = "time"
MESSAGES = {
    NETWORK: "log-in is not allowed from this network",
    TIME: "log-in is not allowed at this time",
}


@cache
def known_timezones() -> frozenset[str]:
    """IANA zone names; "localtime" (the server's own zone file, when the system lists it) is not one."""
    return frozenset(available_timezones()) - {"localtime", "posixrules", "Factory"}


def check_timezone(name: str) -> str:
    """An IANA time zone name (``Europe/Lisbon``, ``UTC``), or ValueError."""
    if name not in known_timezones():
        raise ValueError(f"unknown time zone “{name[:60]}”: use an IANA name such as Europe/Lisbon")
    return name


def parse_range(text: str) -> IPNetwork:
    """``10.0.0.0/8``, ``2001:db8::/32``, or a single address (a /32 or /128). Host bits set
    (``10.1.2.3/8``) are refused: they usually mean a typing mistake."""
    value = text.strip()
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        pass
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"“{value[:60]}” is not an IP address or CIDR range (such as 192.0.2.0/24)") from None
    fixed = ipaddress.ip_network(value, strict=False)
    raise ValueError(f"“{value[:60]}” has host bits set: did you mean {fixed}?")


def parse_time(text: str, *, end: bool = False) -> int:
    """``HH:MM`` as minutes after midnight (``24:00`` only as an end)."""
    value = text.strip()
    hours, sep, minutes = value.partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2 or len(hours) > 2:
        raise ValueError(f"“{value[:20]}” is not a time like 09:00")
    total = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or total > MINUTES_PER_DAY or (total == MINUTES_PER_DAY and not end):
        raise ValueError(f"“{value[:20]}” is not a time of day (00:00 to 23:59{', or 24:00' if end else ''})")
    return total


def format_time(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday … 6 = Sunday: the days the window starts on
    start: int  # minutes after midnight
    end: int  # minutes after midnight, 1..1440; on the next day when ``overnight``
    overnight: bool = False

    @classmethod
    def build(cls, days: Iterable[str], start: str, end: str, overnight: bool = False) -> Window:
        """From the stored / typed form, with the checks that give a clear message."""
        wanted = list(days)
        unknown = [d for d in wanted if d not in DAYS]
        if unknown:
            raise ValueError(f"unknown day “{str(unknown[0])[:10]}”")
        if not wanted:
            raise ValueError("choose at least one day")
        first, last = parse_time(start), parse_time(end, end=True)
        if overnight:
            if last > first:
                raise ValueError(
                    f"a window that ends the next day must end ({format_time(last)}) at or before "
                    f"its start ({format_time(first)}): it lasts at most 24 hours"
                )
            if last == MINUTES_PER_DAY:
                raise ValueError("a window that ends the next day ends at 00:00 to 23:59")
        elif last <= first:
            raise ValueError(
                f"the end ({format_time(last)}) is not after the start ({format_time(first)}); "
                "tick “ends the next day” for a window across midnight"
            )
        return cls(frozenset(DAYS.index(d) for d in wanted), first, last, overnight)

    def as_dict(self) -> dict[str, object]:
        return {
            "days": [DAYS[d] for d in sorted(self.days)],
            "start": format_time(self.start),
            "end": format_time(self.end),
            "overnight": self.overnight,
        }

    def contains(self, weekday: int, minute: int) -> bool:
        """Whether local wall time (day of week, minute of day) is inside the window."""
        if not self.overnight:
            return weekday in self.days and self.start <= minute < self.end
        if weekday in self.days and minute >= self.start:
            return True  # the evening part, on a day the window starts
        return (weekday - 1) % 7 in self.days and minute < self.end  # the morning after


@dataclass(frozen=True)
class Rules:
    ranges: tuple[IPNetwork, ...] = ()
    windows: tuple[Window, ...] = ()
    timezone: str = "UTC"

    @property
    def empty(self) -> bool:
        return not self.ranges and not self.windows

    def allows_address(self, address: str | None) -> bool:
        if not self.ranges:
            return True
        ip = _address(address)
        return ip is not None and any(ip.version == net.version and ip in net for net in self.ranges)

    def allows_time(self, at: datetime) -> bool:
        if not self.windows:
            return True
        local = at.astimezone(ZoneInfo(self.timezone))  # wall time: DST handled by the zone
        weekday, minute = local.weekday(), local.hour * 60 + local.minute
        return any(w.contains(weekday, minute) for w in self.windows)


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def evaluate(rules: Sequence[Rules], address: str | None, at: datetime) -> str | None:
    """None when every one of ``rules`` allows ``address`` at ``at``; else the reason
    (``NETWORK`` before ``TIME``: the address is the stronger signal)."""
    if any(not r.allows_address(address) for r in rules):
        return NETWORK
    if any(not r.allows_time(at) for r in rules):
        return TIME
    return None
