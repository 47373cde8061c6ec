"""TOTP (RFC 6238) with pyotp, on Confide's clock: a code is checked against the 30-second step of
``clock.now()`` and its two neighbours (a phone's clock drifts), and the caller records the step it
matched so that the same code (or an older one) cannot be used twice."""

from __future__ import annotations

from datetime import datetime

import pyotp
import segno

from confide.core import crypto

STEP_S = 30
DIGITS = 6
WINDOW = 1  # steps either side of now that are accepted


def step_at(at: datetime) -> int:
    return int(at.timestamp()) // STEP_S


def code_at(secret: str, at: datetime) -> str:
    """The code an authenticator app shows at ``at`` (pyotp, given Confide's time, never its own)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).at(at)


def looks_like_totp(code: str) -> bool:
    clean = code.replace(" ", "")
    return len(clean) == DIGITS and clean.isascii() and clean.isdigit()


def matching_step(secret: str, code: str, *, at: datetime, after_step: int | None) -> int | None:
    """The step (within the window around ``at``) whose code is ``code`` and that comes after
    ``after_step`` (the last one used), or None."""
    clean = code.replace(" ", "")
    if not looks_like_totp(clean):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)
    now = step_at(at)
    found: int | None = None
    for step in range(now - WINDOW, now + WINDOW + 1):
        # Every candidate is compared (constant time each), so timing does not tell which matched.
        if crypto.constant_time_equal(totp.generate_otp(step), clean) and found is None:
            found = step
    if found is None or (after_step is not None and found <= after_step):
        return None
    return found


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(name=account, issuer_name=issuer)


def qr_data_uri(uri: str) -> str:
    """The ``otpauth://`` URI as a QR code, an SVG data URI (rendered here, no script; the dashboard
    CSP allows ``img-src data:``)."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#111827", light="#ffffff"))


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing it into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
