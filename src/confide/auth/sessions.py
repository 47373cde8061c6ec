"""Pure helpers of console sessions: the short client description kept with a session (never the
full User-Agent header, never an address) and whether a session is still alive."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_BROWSERS = (  # order matters: Edge and Opera also say "Chrome", Chrome also says "Safari"
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)
_TOOL = re.compile(r"^([A-Za-z][A-Za-z0-9._-]{0,30})/")


def describe_client(user_agent: str | None) -> str | None:
    """ "Firefox on Linux", "Chrome on Android", "python-httpx": a family, no version, no detail."""
    if not user_agent:
        return None
    ua = user_agent[:1000]
    browser = next((name for marker, name in _BROWSERS if marker in ua), None)
    system = next((name for marker, name in _SYSTEMS if marker in ua), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or system
    tool = _TOOL.match(ua)
    return tool.group(1)[:30] if tool else "Other"


def alive(
    *,
    revoked_at: datetime | None,
    expires_at: datetime,
    last_seen_at: datetime | None,
    created_at: datetime,
    idle_timeout_s: int,
    now: datetime,
    slack_s: float = 0.0,
) -> bool:
    """Not ended, before its absolute end, and seen within its idle timeout. ``slack_s``: how stale
    ``last_seen_at`` may be by design (it is written at most once a minute)."""
    if revoked_at is not None or expires_at <= now:
        return False
    seen = last_seen_at or created_at
    return seen + timedelta(seconds=idle_timeout_s + slack_s) > now
