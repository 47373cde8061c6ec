"""Two-factor authentication: enrolment, the second step of a log-in, enforcement (ADR 0014).

- **TOTP**: a secret made by ``core.crypto``, stored encrypted (``FactorBox``), confirmed by a first
  code; each accepted code's 30-second step is remembered and a code of that step or an older one is
  refused (no replay), with one conditional UPDATE so that two racing log-ins cannot both use it.
- **Recovery codes**: ten single-use codes, shown once, stored as keyed digests; regenerated on demand.
- **Passkeys / security keys** (WebAuthn): one pending challenge per operator and ceremony, single-use
  (deleted when used) and expiring; the sign count must grow; each credential has its owner's label.
- **Tickets**: a first factor that passed, for an operator who has (or must enrol) a second factor,
  gets a ticket instead of a session: a random token (its digest stored), bound to the operator and
  the first factor's method, expiring after ``TICKET_TTL_S``, refused after ``TICKET_ATTEMPTS`` wrong
  codes, and spent by the step that opens the session.
- **Enforcement**: per workspace, everyone or the holders of some roles (stored as role keys).

Enrolling or removing a factor ends every session of the operator (open consoles are told at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.errors import CommitAndRaise, Conflict, Invalid, NotFound, RateLimited, Unauthorized
from confide.core.runtime import Runtime
from confide.permissions.policy import Permission, require
from confide.realtime import events
from confide.two_factor import totp, webauthn_rp
from confide.two_factor.models import (
    PasskeyCredential,
    RecoveryCode,
    TotpFactor,
    TwoFactorPolicy,
    TwoFactorTicket,
    WebAuthnChallenge,
)
from confide.two_factor.webauthn_rp import RelyingParty
from confide.users import operators as user_operators
from confide.users import roles as user_roles
from confide.users import sessions as user_sessions

TICKET_TTL_S = 300
TICKET_ATTEMPTS = 5
# Wrong second factors of one operator, over all their tickets, within the window: then no more
# checks until the window has moved on (a password holder cannot brute-force six digits by asking
# for new tickets: at most ~1,000 guesses a day, each with a 3-in-a-million chance).
THROTTLE_FAILURES = 10
THROTTLE_WINDOW_S = 900
CHALLENGE_TTL_S = 300
RECOVERY_CODES = 10
ISSUER = "Confide"
VERIFY, ENROL = "verify", "enrol"  # what a ticket is for


class SecondFactorRequired(Unauthorized):
    """The JSON API's answer to a right first factor of an account with a second factor: 401, code
    ``second_factor_required``, with the ticket to spend at ``POST /api/v1/auth/login/second-factor``
    (with a TOTP or recovery code) and how long it lasts. No session without it (ADR 0024)."""

    code = "second_factor_required"

    def __init__(self, message: str, ticket: str) -> None:
        super().__init__(message)
        self.ticket = ticket

    def extra(self) -> dict[str, str | int]:
        return {"ticket": self.ticket, "expires_in": TICKET_TTL_S}


class SecondFactorEnrolmentRequired(Unauthorized):
    """The JSON API's answer when the workspace requires a second factor the account has not set
    up: enrolment needs the console (a QR code or a passkey). 401, no session."""

    code = "second_factor_enrolment_required"


class TicketExpired(Unauthorized):
    code = "two_factor_expired"


_EXPIRED = "this log-in has expired or was already used; log in again"


# ---------------------------------------------------------------- state
@dataclass(frozen=True)
class Factors:
    totp: bool
    totp_pending: bool  # set up but not confirmed yet
    passkeys: list[dict[str, Any]]
    recovery_left: int
    recovery_total: int

    @property
    def enrolled(self) -> bool:
        return self.totp or bool(self.passkeys)


async def factors(uow: UnitOfWork, operator_id: str) -> Factors:
    session = uow.session
    factor = await session.get(TotpFactor, operator_id)
    creds = (
        await session.scalars(
            select(PasskeyCredential)
            .where(PasskeyCredential.operator_id == operator_id)
            .order_by(PasskeyCredential.created_at, PasskeyCredential.id)
        )
    ).all()
    left = await session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.operator_id == operator_id, RecoveryCode.used_at.is_(None))
    )
    total = await session.scalar(
        select(func.count()).select_from(RecoveryCode).where(RecoveryCode.operator_id == operator_id)
    )
    return Factors(
        totp=factor is not None and factor.confirmed_at is not None,
        totp_pending=factor is not None and factor.confirmed_at is None,
        passkeys=[
            {
                "id": c.id,
                "label": c.label,
                "created_at": clock.iso(c.created_at),
                "last_used_at": clock.iso(c.last_used_at),
            }
            for c in creds
        ],
        recovery_left=int(left or 0),
        recovery_total=int(total or 0),
    )


async def two_factor_state(uow: UnitOfWork, operator_id: str) -> str:
    """For the account review: ``none`` | ``totp`` | ``passkey`` | ``totp+passkey``."""
    found = await factors(uow, operator_id)
    parts = [name for name, on in (("totp", found.totp), ("passkey", bool(found.passkeys))) if on]
    return "+".join(parts) or "none"


# ---------------------------------------------------------------- enforcement
@dataclass(frozen=True)
class PolicyView:
    require_all: bool
    roles: list[str]


async def role_choices(uow: UnitOfWork, workspace_id: str) -> list[tuple[str, str]]:
    """(key, name) of the roles a policy may name: the built-in roles and the workspace's custom ones."""
    return await user_roles.choices(uow, workspace_id)


async def get_policy(uow: UnitOfWork, workspace_id: str) -> PolicyView:
    row = await uow.session.get(TwoFactorPolicy, workspace_id)
    if row is None:
        return PolicyView(False, [])
    return PolicyView(row.require_all, list(row.roles or []))


async def read_policy(uow: UnitOfWork, actor: OperatorActor) -> PolicyView:
    require(actor, Permission.SETTINGS_READ)
    return await get_policy(uow, actor.workspace_id)


async def set_policy(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, *, require_all: bool, roles: list[str]
) -> PolicyView:
    require(actor, Permission.SETTINGS_MANAGE)
    if len(roles) > 200:
        raise Invalid("choose roles from the list")
    try:  # built-in keys and the workspace's custom role ids (share-locked: see roles.checked_key)
        clean = sorted({await user_roles.checked_key(uow, actor.workspace_id, key) for key in roles})
    except Invalid:
        raise Invalid("choose roles from the list") from None
    row = await uow.session.get(TwoFactorPolicy, actor.workspace_id, with_for_update=True)
    if row is None:
        row = TwoFactorPolicy(workspace_id=actor.workspace_id, require_all=require_all, roles=clean)
        uow.session.add(row)
    row.require_all, row.roles, row.updated_at = require_all, clean, clock.now()
    joined = "+".join(clean)
    await audit.record(
        rt,
        uow,
        "settings.two_factor_updated",
        actor=actor,
        target_type="workspace",
        target_id=actor.workspace_id,
        detail={"require_all": require_all, "roles": joined if len(joined) <= 64 else None, "role_count": len(clean)},
    )
    await uow.session.flush()
    return PolicyView(require_all, clean)


async def is_required(uow: UnitOfWork, operator_id: str) -> bool:
    """Whether this operator's workspace requires them to use a second factor (policy configuration:
    which role keys it names, matched against the operator's; access itself is decided elsewhere)."""
    op = await user_operators.get_operator(uow, operator_id)
    if op is None:
        return False
    policy = await get_policy(uow, op.workspace_id)
    return policy.require_all or user_roles.canonical(op.role) in policy.roles


async def forget_role(uow: UnitOfWork, workspace_id: str, role_key: str) -> int:
    """A custom role is being deleted: the policy stops naming it (nobody holds it). Returns 1 when
    the policy named it."""
    row = await uow.session.get(TwoFactorPolicy, workspace_id, with_for_update=True)
    if row is None or role_key not in (row.roles or []):
        return 0
    row.roles = [r for r in row.roles if r != role_key]
    row.updated_at = clock.now()
    await uow.session.flush()
    return 1


# ---------------------------------------------------------------- the second step of a log-in
@dataclass(frozen=True)
class Ticket:
    token: str  # for the browser (an HttpOnly cookie); only its digest is stored
    stage: str  # verify | enrol


@dataclass(frozen=True)
class Passed:
    """A ticket spent: the operator may now get a session, for this first factor's method."""

    operator_id: str
    method: str
    factor: str  # totp | recovery | passkey | enrolled
    recovery_codes: list[str] | None = None  # new codes to show once (enrolment at log-in)


async def second_step(uow: UnitOfWork, operator_id: str) -> str | None:
    """What a log-in still needs after its first factor: ``verify`` (a factor is enrolled), ``enrol``
    (none is, and the workspace requires one), or None (open the session)."""
    if (await factors(uow, operator_id)).enrolled:
        return VERIFY
    if await is_required(uow, operator_id):
        return ENROL
    return None


async def issue_ticket(uow: UnitOfWork, *, operator_id: str, method: str, stage: str) -> Ticket:
    now = clock.now()
    # Expired tickets are of no use to anyone: sweep them as new ones are made.
    await uow.session.execute(delete(TwoFactorTicket).where(TwoFactorTicket.expires_at < now - timedelta(hours=1)))
    token = crypto.random_token()
    uow.session.add(
        TwoFactorTicket(
            id=crypto.new_id(),
            token_digest=crypto.token_digest(token),
            operator_id=operator_id,
            method=method,
            stage=stage,
            attempts=0,
            created_at=now,
            expires_at=now + timedelta(seconds=TICKET_TTL_S),
        )
    )
    await uow.session.flush()
    return Ticket(token, stage)


async def _ticket(uow: UnitOfWork, token: object, *, for_update: bool) -> TwoFactorTicket | None:
    if not isinstance(token, str) or not token or len(token) > 200:
        return None
    stmt = select(TwoFactorTicket).where(TwoFactorTicket.token_digest == crypto.token_digest(token))
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    row = await uow.session.scalar(stmt)
    if row is None or row.used_at is not None or row.expires_at <= clock.now() or row.attempts >= TICKET_ATTEMPTS:
        return None
    return row


@dataclass(frozen=True)
class TicketView:
    operator_id: str
    stage: str
    has_totp: bool
    has_passkeys: bool
    attempts_left: int


async def view_ticket(uow: UnitOfWork, token: object) -> TicketView:
    """What the second-step page shows; ``TicketExpired`` when the ticket cannot be used."""
    row = await _ticket(uow, token, for_update=False)
    if row is None:
        raise TicketExpired(_EXPIRED)
    found = await factors(uow, row.operator_id)
    return TicketView(row.operator_id, row.stage, found.totp, bool(found.passkeys), TICKET_ATTEMPTS - row.attempts)


async def _ticket_for(uow: UnitOfWork, token: object, stage: str) -> TwoFactorTicket:
    row = await _ticket(uow, token, for_update=True)
    if row is None or row.stage != stage:
        raise TicketExpired(_EXPIRED)
    return row


async def _throttle(uow: UnitOfWork, operator_id: str) -> None:
    """Refuse to check anything while the operator's recent wrong answers reach the limit."""
    since = clock.now() - timedelta(seconds=THROTTLE_WINDOW_S)
    failures = await uow.session.scalar(
        select(func.coalesce(func.sum(TwoFactorTicket.attempts), 0)).where(
            TwoFactorTicket.operator_id == operator_id, TwoFactorTicket.created_at > since
        )
    )
    if int(failures or 0) >= THROTTLE_FAILURES:
        raise RateLimited("too many wrong codes for this account; wait a quarter of an hour and log in again")


async def _operator_audit(
    rt: Runtime,
    uow: UnitOfWork,
    action: str,
    operator_id: str,
    *,
    outcome: str = "ok",
    detail: dict[str, audit.DetailValue] | None = None,
) -> None:
    op = await user_operators.get_operator(uow, operator_id)
    await audit.record(
        rt,
        uow,
        action,
        actor_type="operator",
        actor_id=operator_id,
        workspace_id=op.workspace_id if op else None,
        target_type="operator",
        target_id=operator_id,
        outcome=outcome,
        detail=detail,
    )


async def _refuse(rt: Runtime, uow: UnitOfWork, row: TwoFactorTicket, factor: str, message: str) -> CommitAndRaise:
    """A wrong second factor: counted on the ticket and audited, both kept although the call fails."""
    row.attempts += 1
    await _operator_audit(
        rt,
        uow,
        "auth.two_factor",
        row.operator_id,
        outcome="failed",
        detail={"factor": factor, "method": row.method, "attempts": row.attempts},
    )
    await uow.session.flush()
    left = TICKET_ATTEMPTS - row.attempts
    if left <= 0:
        return CommitAndRaise(TicketExpired("too many wrong codes; log in again"))
    return CommitAndRaise(Unauthorized(message))


async def _spend(rt: Runtime, uow: UnitOfWork, row: TwoFactorTicket, factor: str) -> None:
    result = await uow.session.execute(
        update(TwoFactorTicket)
        .where(TwoFactorTicket.id == row.id, TwoFactorTicket.used_at.is_(None))
        .values(used_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if cast("CursorResult[Any]", result).rowcount != 1:
        raise TicketExpired(_EXPIRED)
    await _operator_audit(rt, uow, "auth.two_factor", row.operator_id, detail={"factor": factor, "method": row.method})


async def _use_totp(rt: Runtime, uow: UnitOfWork, operator_id: str, code: str, *, confirmed: bool) -> bool:
    """Whether ``code`` is a fresh TOTP code of this operator's (confirmed, or pending) secret; the
    step it matched is recorded in the same conditional UPDATE that checks it is newer."""
    factor = await uow.session.get(TotpFactor, operator_id, populate_existing=True)
    if factor is None or (factor.confirmed_at is not None) != confirmed:
        return False
    secret = rt.factor_box.open_secret(factor.secret_enc, operator_id=operator_id)
    step = totp.matching_step(secret, code, at=clock.now(), after_step=factor.last_used_step)
    if step is None:
        return False
    newer = (TotpFactor.last_used_step.is_(None)) | (TotpFactor.last_used_step < step)
    result = await uow.session.execute(
        update(TotpFactor)
        .where(TotpFactor.operator_id == operator_id, newer)
        .values(last_used_step=step)
        .execution_options(synchronize_session=False)
    )
    return cast("CursorResult[Any]", result).rowcount == 1


async def _use_recovery(rt: Runtime, uow: UnitOfWork, operator_id: str, code: str) -> bool:
    digest = rt.factor_box.code_digest(code, operator_id=operator_id)
    result = await uow.session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.operator_id == operator_id,
            RecoveryCode.code_digest == digest,
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    return cast("CursorResult[Any]", result).rowcount == 1


async def verify_code(rt: Runtime, uow: UnitOfWork, token: object, code: str) -> Passed:
    """The second step with a code: a TOTP code (six digits) or a recovery code."""
    row = await _ticket_for(uow, token, VERIFY)
    await _throttle(uow, row.operator_id)
    code = (code or "").strip()[:64]
    if totp.looks_like_totp(code):
        if not await _use_totp(rt, uow, row.operator_id, code, confirmed=True):
            raise await _refuse(rt, uow, row, "totp", "wrong or already used code")
        await _spend(rt, uow, row, "totp")
        return Passed(row.operator_id, row.method, "totp")
    if len(crypto.normalise_recovery_code(code)) != 10 or not await _use_recovery(rt, uow, row.operator_id, code):
        raise await _refuse(rt, uow, row, "recovery", "wrong or already used code")
    await _spend(rt, uow, row, "recovery")
    left = (await factors(uow, row.operator_id)).recovery_left
    await _operator_audit(rt, uow, "auth.two_factor_recovery_used", row.operator_id, detail={"left": left})
    return Passed(row.operator_id, row.method, "recovery")


# ---------------------------------------------------------------- what changes a factor does to sessions
async def _factors_changed(rt: Runtime, uow: UnitOfWork, operator_id: str) -> None:
    """Every session of the operator ends (the page that made the change gets a new one)."""
    await user_sessions.revoke_sessions(uow, operator_id)
    events.publish(rt, uow, events.Revoke(operator_id))


async def _new_recovery_codes(rt: Runtime, uow: UnitOfWork, operator_id: str) -> list[str]:
    await uow.session.execute(delete(RecoveryCode).where(RecoveryCode.operator_id == operator_id))
    now = clock.now()
    codes = [crypto.new_recovery_code() for _ in range(RECOVERY_CODES)]
    for code in codes:
        uow.session.add(
            RecoveryCode(
                id=crypto.new_id(),
                operator_id=operator_id,
                code_digest=rt.factor_box.code_digest(code, operator_id=operator_id),
                created_at=now,
            )
        )
    await uow.session.flush()
    return codes


async def _codes_if_none(rt: Runtime, uow: UnitOfWork, operator_id: str) -> list[str] | None:
    """A first factor enrolled: recovery codes come with it (shown once), unless some are left."""
    if (await factors(uow, operator_id)).recovery_left > 0:
        return None
    return await _new_recovery_codes(rt, uow, operator_id)


async def regenerate_recovery_codes(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> list[str]:
    if not (await factors(uow, actor.operator_id)).enrolled:
        raise Invalid("set up an authenticator app or a passkey first")
    codes = await _new_recovery_codes(rt, uow, actor.operator_id)
    await audit.record(
        rt,
        uow,
        "auth.two_factor_recovery_regenerated",
        actor=actor,
        target_type="operator",
        target_id=actor.operator_id,
        detail={"count": len(codes)},
    )
    return codes


# ---------------------------------------------------------------- TOTP enrolment
@dataclass(frozen=True)
class TotpSetup:
    secret: str
    uri: str  # otpauth://…

    @property
    def qr(self) -> str:
        return totp.qr_data_uri(self.uri)

    @property
    def grouped(self) -> str:
        return totp.grouped(self.secret)


async def pending_totp(rt: Runtime, uow: UnitOfWork, operator_id: str) -> TotpSetup:
    """The secret waiting for its first code (made now when there is none). Conflict when an app is
    set up already."""
    op = await user_operators.get_operator(uow, operator_id)
    if op is None:
        raise NotFound()
    factor = await uow.session.get(TotpFactor, operator_id, with_for_update=True)
    if factor is not None and factor.confirmed_at is not None:
        raise Conflict("an authenticator app is set up already; remove it first to set up another")
    if factor is None:
        secret = crypto.new_totp_secret()
        factor = TotpFactor(
            operator_id=operator_id,
            secret_enc=rt.factor_box.seal_secret(secret, operator_id=operator_id),
            created_at=clock.now(),
        )
        uow.session.add(factor)
        await uow.session.flush()
    else:
        secret = rt.factor_box.open_secret(factor.secret_enc, operator_id=operator_id)
    return TotpSetup(secret, totp.provisioning_uri(secret, account=op.email, issuer=ISSUER))


async def restart_totp(uow: UnitOfWork, operator_id: str) -> None:
    """Throw a pending (unconfirmed) secret away, e.g. when it was shown to the wrong eyes."""
    await uow.session.execute(
        delete(TotpFactor).where(TotpFactor.operator_id == operator_id, TotpFactor.confirmed_at.is_(None))
    )


async def _confirm_totp(rt: Runtime, uow: UnitOfWork, operator_id: str, code: str) -> list[str] | None:
    if not await _use_totp(rt, uow, operator_id, code, confirmed=False):
        raise Invalid("that code does not match; check the time on your phone and type the code shown now")
    await uow.session.execute(
        update(TotpFactor)
        .where(TotpFactor.operator_id == operator_id)
        .values(confirmed_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    codes = await _codes_if_none(rt, uow, operator_id)
    await _operator_audit(rt, uow, "auth.two_factor_enrolled", operator_id, detail={"factor": "totp"})
    await _factors_changed(rt, uow, operator_id)
    return codes


async def confirm_totp(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, code: str) -> list[str] | None:
    """The first code from the app: TOTP is on. Returns new recovery codes (to show once) when the
    operator had none. Every session ends; the caller opens a new one for this browser."""
    return await _confirm_totp(rt, uow, actor.operator_id, code)


async def remove_totp(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> None:
    factor = await uow.session.get(TotpFactor, actor.operator_id, with_for_update=True)
    if factor is None or factor.confirmed_at is None:
        raise NotFound("no authenticator app is set up")
    found = await factors(uow, actor.operator_id)
    await _check_may_remove(uow, actor.operator_id, remaining=len(found.passkeys))
    await uow.session.delete(factor)
    await _after_removal(rt, uow, actor, "totp", remaining=len(found.passkeys))


async def _check_may_remove(uow: UnitOfWork, operator_id: str, *, remaining: int) -> None:
    if remaining == 0 and await is_required(uow, operator_id):
        raise Invalid("your workspace requires a second factor: add another one before removing this one")


async def _after_removal(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, factor: str, *, remaining: int) -> None:
    if remaining == 0:
        await uow.session.execute(delete(RecoveryCode).where(RecoveryCode.operator_id == actor.operator_id))
    await audit.record(
        rt,
        uow,
        "auth.two_factor_removed",
        actor=actor,
        target_type="operator",
        target_id=actor.operator_id,
        detail={"factor": factor, "remaining": remaining},
    )
    await _factors_changed(rt, uow, actor.operator_id)
    await uow.session.flush()


# ---------------------------------------------------------------- passkeys
async def _new_challenge(uow: UnitOfWork, operator_id: str, purpose: str) -> bytes:
    challenge = crypto.new_challenge()
    values = {
        "operator_id": operator_id,
        "purpose": purpose,
        "challenge": webauthn_rp.b64url(challenge),
        "expires_at": clock.now() + timedelta(seconds=CHALLENGE_TTL_S),
    }
    session = uow.session
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(WebAuthnChallenge).values(**values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["operator_id", "purpose"],
            set_={"challenge": stmt.excluded.challenge, "expires_at": stmt.excluded.expires_at},
        )
    )
    return challenge


async def _take_challenge(uow: UnitOfWork, operator_id: str, purpose: str) -> bytes | None:
    """The pending challenge, deleted (single use); None when there is none or it expired."""
    row = await uow.session.scalar(
        select(WebAuthnChallenge)
        .where(WebAuthnChallenge.operator_id == operator_id, WebAuthnChallenge.purpose == purpose)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        return None
    await uow.session.delete(row)
    await uow.session.flush()
    if row.expires_at <= clock.now():
        return None
    return webauthn_rp.from_b64url(row.challenge)


async def _passkey_registration_options(uow: UnitOfWork, operator_id: str, rp: RelyingParty) -> str:
    op = await user_operators.get_operator(uow, operator_id)
    if op is None:
        raise NotFound()
    existing = (
        await uow.session.scalars(
            select(PasskeyCredential.credential_id).where(PasskeyCredential.operator_id == operator_id)
        )
    ).all()
    challenge = await _new_challenge(uow, operator_id, "register")
    return webauthn_rp.registration_options(
        rp, user_id=op.id, user_name=op.email, display_name=op.name, challenge=challenge, exclude=list(existing)
    )


async def passkey_registration_options(uow: UnitOfWork, actor: OperatorActor, rp: RelyingParty) -> str:
    """Options for ``navigator.credentials.create`` (JSON), with a fresh challenge."""
    return await _passkey_registration_options(uow, actor.operator_id, rp)


def clean_label(label: object) -> str:
    text = " ".join(str(label or "").split())
    if not text:
        raise Invalid("give the passkey a name, such as the device it is on")
    if len(text) > 60:
        raise Invalid("the passkey's name is too long (60 characters at most)")
    return text


async def _register_passkey(
    rt: Runtime, uow: UnitOfWork, operator_id: str, raw: str, label: str, rp: RelyingParty
) -> tuple[str, list[str] | None]:
    name = clean_label(label)
    credential = webauthn_rp.parse_credential(raw)
    challenge = await _take_challenge(uow, operator_id, "register")
    if challenge is None:
        raise CommitAndRaise(Invalid("this passkey request has expired; try again"))
    new = webauthn_rp.verify_registration(rp, credential, challenge=challenge)
    if new is None:
        await _operator_audit(
            rt, uow, "auth.two_factor_enrolled", operator_id, outcome="failed", detail={"factor": "passkey"}
        )
        raise CommitAndRaise(Invalid("the passkey could not be verified; try again"))
    if await uow.session.scalar(
        select(PasskeyCredential.id).where(PasskeyCredential.credential_id == new.credential_id)
    ):
        raise CommitAndRaise(Conflict("this passkey is registered already"))
    passkey_id = crypto.new_id()
    uow.session.add(
        PasskeyCredential(
            id=passkey_id,
            operator_id=operator_id,
            credential_id=new.credential_id,
            public_key=new.public_key,
            sign_count=new.sign_count,
            label=name,
            created_at=clock.now(),
        )
    )
    await uow.session.flush()
    codes = await _codes_if_none(rt, uow, operator_id)
    await _operator_audit(
        rt, uow, "auth.two_factor_enrolled", operator_id, detail={"factor": "passkey", "passkey": passkey_id}
    )
    await _factors_changed(rt, uow, operator_id)
    return passkey_id, codes


async def register_passkey(
    rt: Runtime, uow: UnitOfWork, actor: OperatorActor, raw: str, label: str, rp: RelyingParty
) -> tuple[str, list[str] | None]:
    """Verify the browser's ``credentials.create`` answer against the pending challenge and keep the
    credential. Returns its id and new recovery codes when the operator had none."""
    return await _register_passkey(rt, uow, actor.operator_id, raw, label, rp)


async def remove_passkey(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, passkey_id: str) -> None:
    row = await uow.session.scalar(
        select(PasskeyCredential)
        .where(PasskeyCredential.id == passkey_id, PasskeyCredential.operator_id == actor.operator_id)
        .with_for_update()
    )
    if row is None:
        raise NotFound("no such passkey")
    found = await factors(uow, actor.operator_id)
    remaining = len(found.passkeys) - 1 + (1 if found.totp else 0)
    await _check_may_remove(uow, actor.operator_id, remaining=remaining)
    await uow.session.delete(row)
    await _after_removal(rt, uow, actor, "passkey", remaining=remaining)


async def passkey_login_options(uow: UnitOfWork, token: object, rp: RelyingParty) -> str:
    """Options for ``navigator.credentials.get`` in the second step (the ticket's operator's keys)."""
    row = await _ticket_for(uow, token, VERIFY)
    allow = (
        await uow.session.scalars(
            select(PasskeyCredential.credential_id).where(PasskeyCredential.operator_id == row.operator_id)
        )
    ).all()
    if not allow:
        raise Invalid("no passkey is registered for this account")
    challenge = await _new_challenge(uow, row.operator_id, "login")
    return webauthn_rp.authentication_options(rp, challenge=challenge, allow=list(allow))


async def verify_passkey(rt: Runtime, uow: UnitOfWork, token: object, raw: str, rp: RelyingParty) -> Passed:
    """The second step with a passkey: the answer must be signed over the pending login challenge by
    one of the ticket's operator's credentials, with a sign count that grew."""
    row = await _ticket_for(uow, token, VERIFY)
    await _throttle(uow, row.operator_id)
    try:
        credential = webauthn_rp.parse_credential(raw)
    except Invalid:
        raise await _refuse(rt, uow, row, "passkey", "the passkey answer could not be verified") from None
    challenge = await _take_challenge(uow, row.operator_id, "login")
    stored = await uow.session.scalar(
        select(PasskeyCredential)
        .where(PasskeyCredential.credential_id == credential["id"], PasskeyCredential.operator_id == row.operator_id)
        .with_for_update()
    )
    new_count = None
    if challenge is not None and stored is not None:
        new_count = webauthn_rp.verify_authentication(
            rp, credential, challenge=challenge, public_key=stored.public_key, sign_count=stored.sign_count
        )
    if stored is None or new_count is None:
        raise await _refuse(rt, uow, row, "passkey", "the passkey answer could not be verified")
    stored.sign_count, stored.last_used_at = new_count, clock.now()
    await _spend(rt, uow, row, "passkey")
    return Passed(row.operator_id, row.method, "passkey")


# ---------------------------------------------------------------- enrolment during a log-in
async def enrol_view(rt: Runtime, uow: UnitOfWork, token: object) -> TotpSetup:
    """The enrolment page of a log-in whose workspace requires a factor: the pending TOTP secret."""
    row = await _ticket_for(uow, token, ENROL)
    return await pending_totp(rt, uow, row.operator_id)


async def enrol_totp_at_login(rt: Runtime, uow: UnitOfWork, token: object, code: str) -> Passed:
    row = await _ticket_for(uow, token, ENROL)
    await _throttle(uow, row.operator_id)
    try:
        codes = await _confirm_totp(rt, uow, row.operator_id, code)
    except Invalid as exc:
        raise await _refuse(rt, uow, row, "totp", exc.message) from None
    await _spend(rt, uow, row, "enrolled")
    return Passed(row.operator_id, row.method, "enrolled", codes)


async def enrol_passkey_options_at_login(uow: UnitOfWork, token: object, rp: RelyingParty) -> str:
    row = await _ticket_for(uow, token, ENROL)
    return await _passkey_registration_options(uow, row.operator_id, rp)


async def enrol_passkey_at_login(
    rt: Runtime, uow: UnitOfWork, token: object, raw: str, label: str, rp: RelyingParty
) -> Passed:
    row = await _ticket_for(uow, token, ENROL)
    _, codes = await _register_passkey(rt, uow, row.operator_id, raw, label, rp)
    await _spend(rt, uow, row, "enrolled")
    return Passed(row.operator_id, row.method, "enrolled", codes)


# ---------------------------------------------------------------- the account page
async def pending_setup(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> TotpSetup | None:
    """The authenticator-app secret waiting for its first code, if the operator started one."""
    factor = await uow.session.get(TotpFactor, actor.operator_id)
    op = await user_operators.get_operator(uow, actor.operator_id)
    if factor is None or factor.confirmed_at is not None or op is None:
        return None
    secret = rt.factor_box.open_secret(factor.secret_enc, operator_id=actor.operator_id)
    return TotpSetup(secret, totp.provisioning_uri(secret, account=op.email, issuer=ISSUER))


async def start_totp(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> None:
    await pending_totp(rt, uow, actor.operator_id)


async def cancel_totp(uow: UnitOfWork, actor: OperatorActor) -> None:
    await restart_totp(uow, actor.operator_id)


async def renew_session(rt: Runtime, uow: UnitOfWork, actor: OperatorActor) -> str:
    """A factor changed and every session ended: a new one for the browser that made the change."""
    return await user_sessions.open_session(rt, uow, actor.operator_id, method="two_factor")


# ---------------------------------------------------------------- the shell's way back in
async def reset_factors(rt: Runtime, uow: UnitOfWork, *, email: str) -> str:
    """``confide reset-two-factor``: an operator who lost their app, keys and recovery codes gets back
    in with their password alone (or is taken to enrolment, when required). Every factor and code is
    deleted, every session ends; audited as the system's act. Returns the operator id."""
    found_id = await user_operators.enabled_operator_id_by_email(uow, email)
    if found_id is None:
        raise NotFound("no enabled account has this e-mail address")
    operator_id = found_id
    found = await factors(uow, operator_id)
    for model in (TotpFactor, PasskeyCredential, RecoveryCode, WebAuthnChallenge):
        await uow.session.execute(delete(model).where(model.operator_id == operator_id))
    op = await user_operators.get_operator(uow, operator_id)
    await audit.record(
        rt,
        uow,
        "auth.two_factor_removed",
        actor_type="system",
        workspace_id=op.workspace_id if op else None,
        target_type="operator",
        target_id=operator_id,
        detail={"factor": "all", "totp": found.totp, "passkeys": len(found.passkeys), "via": "cli"},
    )
    await _factors_changed(rt, uow, operator_id)
    return operator_id
