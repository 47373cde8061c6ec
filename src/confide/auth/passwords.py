"""The password policy, as pure functions (docs/security.md, ADR 0012).

- a minimum length (12 by default; a workspace may raise it) and a maximum (1024: argon2 would take
  any length, but a megabyte "password" is only a way to burn CPU);
- not on the bundled list of common and breached passwords (``data/common-passwords.txt``, about
  40,000 entries; see its README), compared case-insensitively and offline;
- not the account's own e-mail address or its local part;
- not one of the last ``history`` passwords (checked against their argon2 hashes by the caller, off
  the event loop: ``users.login`` and ``users.passwords`` do);
- an optional maximum age, off by default: NIST SP 800-63B (5.1.1.2) advises against forced
  periodic changes, which lead people to predictable variations of the old password; a change is
  forced instead when there is a reason (a reset, a one-time password, a suspected compromise).

No composition rules (a digit, a capital...): the same guidance finds they add little and annoy.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from importlib import resources

MIN_LENGTH = 12  # the floor: a workspace may raise its minimum, never lower it below this
MAX_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    min_length: int = MIN_LENGTH
    history: int = 5
    max_age_days: int = 0  # 0: passwords never expire


@cache
def common_passwords() -> frozenset[str]:
    """The bundled list, loaded once (about 0.4 MB of text, ~3 MB in memory)."""
    text = resources.files("confide.auth").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line)


def _fold(password: str) -> str:
    return unicodedata.normalize("NFKC", password).casefold()


def is_common(password: str) -> bool:
    folded = _fold(password)
    return folded in common_passwords() or folded.strip() in common_passwords()


def problems(password: str, policy: PasswordPolicy, *, email: str | None = None) -> list[str]:
    """Why this password may not be chosen (empty: it may). Sentences shown to the person."""
    found: list[str] = []
    length = len(password)
    if length < policy.min_length:
        found.append(f"The password must have at least {policy.min_length} characters.")
    elif length > MAX_LENGTH:
        found.append(f"The password may have at most {MAX_LENGTH} characters.")
    if not password.strip():
        found.append("The password may not be only spaces.")
    elif is_common(password):
        found.append("This password is on a list of common or breached passwords; choose another.")
    if email:
        folded, address = _fold(password).strip(), email.casefold()
        if folded in (address, address.split("@", 1)[0]):
            found.append("The password may not be your e-mail address.")
    return found


def expired(changed_at: datetime | None, policy: PasswordPolicy, now: datetime) -> bool:
    """Whether a password set at ``changed_at`` is past the policy's maximum age (never when 0).
    A password with no recorded change date counts from ``now`` (never expired by the upgrade)."""
    if policy.max_age_days <= 0 or changed_at is None:
        return False
    return changed_at + timedelta(days=policy.max_age_days) <= now
