"""Verified visitor identity (ADR 0022, docs/privacy/verified-identity.md).

A site whose visitors are logged in passes the widget an identity (user id, e-mail, name) and
``hash`` = HMAC-SHA256(site secret, ``user_id + "\\n" + email``), computed on the site's server.
Only a claim that verifies links conversations to one person: the site's ``verified_identities``
row maps the user id (a keyed blind index) to one visitor record, the data subject, so every
visit on every device gets that same subject, its key and its conversations. Anything else (no
secret, no hash, a wrong one, a hash for another user or e-mail or made with another site's
secret, an id with control characters) is ignored: the chat goes on as an anonymous visitor and
nothing about the claim is stored; one log line says why, with the site id only.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any

import structlog
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from confide.audit import service as audit
from confide.auth.actors import OperatorActor
from confide.core import clock, crypto
from confide.core.db import UnitOfWork
from confide.core.errors import Conflict, NotFound
from confide.core.runtime import Runtime
from confide.permissions.access import access_site_by_id
from confide.permissions.policy import Permission, require
from confide.verified.models import IdentitySecret, VerifiedIdentity
from confide.verified.schemas import IdentityClaim
from confide.workspaces import service as workspaces
from confide.workspaces.service import Site

log = structlog.get_logger(__name__)
IGNORED: Counter[str] = Counter()  # reason -> claims ignored by this process (a metric; no values)
_BIDX_KIND = "verified_user_id"


@dataclass(frozen=True, slots=True)
class Verified:
    """A claim that verified: the person's user id on the site, their e-mail and name (checked)."""

    site_id: str
    workspace_id: str
    user_id: str
    email: str | None
    name: str | None


def _aad(row_id: str) -> str:
    return f"identity_secrets.secret:{row_id}"


def _has_control(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value)


def _ignore(site: Site, reason: str) -> Verified | None:
    IGNORED[reason] += 1
    log.warning("identity_claim_ignored", site_id=site.id, reason=reason)
    return None


async def _secret(rt: Runtime, uow: UnitOfWork, site_id: str) -> str | None:
    row = await uow.session.scalar(select(IdentitySecret).where(IdentitySecret.site_id == site_id))
    if row is None:
        return None
    key = await rt.keyring.get(uow.session, row.id)
    return key.decrypt(row.secret_enc, _aad(row.id))


async def verify(rt: Runtime, uow: UnitOfWork, site: Site, claim: IdentityClaim | None) -> Verified | None:
    """The person the claim names, if the site's secret signed exactly this user id and e-mail;
    otherwise None (logged with a reason, the site id and nothing else)."""
    if claim is None:
        return None
    if not claim.hash:
        return _ignore(site, "missing_hash")
    if _has_control(claim.id) or (claim.email and _has_control(claim.email)) or claim.id != claim.id.strip():
        return _ignore(site, "malformed")
    secret = await _secret(rt, uow, site.id)
    if secret is None:
        return _ignore(site, "no_secret")
    if not crypto.identity_signature_valid(secret, claim.id, claim.email or "", claim.hash):
        return _ignore(site, "bad_signature")
    email: str | None = None
    if claim.email and claim.email.strip():
        try:
            email = validate_email(claim.email.strip(), check_deliverability=False, test_environment=True).normalized
        except EmailNotValidError:
            return _ignore(site, "bad_email")
    name = claim.name.strip() if claim.name and claim.name.strip() and not _has_control(claim.name) else None
    return Verified(site.id, site.workspace_id, claim.id, email, name)


def _bidx(rt: Runtime, who: Verified) -> str:
    return external_id_term(rt, who.workspace_id, who.site_id, who.user_id)


def external_id_term(rt: Runtime, workspace_id: str, site_id: str, user_id: str) -> str:
    """The blind index of a site's user id (``verified_identities.external_id_bidx``): how Find a
    person (subjects.find) looks a verified identity up without the id in plain text."""
    return rt.bidx.term(workspace_id, _BIDX_KIND, f"{site_id}\x00{user_id}")


async def subject_of(rt: Runtime, uow: UnitOfWork, who: Verified) -> str | None:
    """The visitor record (subject id) already linked to this person, if any."""
    stmt = select(VerifiedIdentity.subject_id).where(
        VerifiedIdentity.site_id == who.site_id, VerifiedIdentity.external_id_bidx == _bidx(rt, who)
    )
    return await uow.session.scalar(stmt)


async def claim_subject(rt: Runtime, uow: UnitOfWork, who: Verified) -> tuple[str, bool]:
    """This person's subject id, and whether it is new (then the caller creates the visitor with
    that id in the same unit: the link's foreign key is checked at commit).

    One ``INSERT … ON CONFLICT DO NOTHING``: when two devices arrive at once, PostgreSQL makes
    the second wait for the first to commit and then insert nothing, and the second reads the
    first one's row. So one person is one subject, and the loser has written nothing."""
    now = clock.now()
    bidx = _bidx(rt, who)
    new_subject = crypto.new_id()
    dialect = uow.session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    stmt = (
        insert(VerifiedIdentity)
        .values(
            id=crypto.new_id(),
            workspace_id=who.workspace_id,
            site_id=who.site_id,
            external_id_bidx=bidx,
            subject_id=new_subject,
            created_at=now,
            last_verified_at=now,
        )
        .on_conflict_do_nothing(index_elements=["site_id", "external_id_bidx"])
        .returning(VerifiedIdentity.subject_id)
    )
    won = await uow.session.scalar(stmt)
    if won is not None:
        return won, True
    row = await uow.session.scalar(
        select(VerifiedIdentity)
        .where(VerifiedIdentity.site_id == who.site_id, VerifiedIdentity.external_id_bidx == bidx)
        .execution_options(populate_existing=True)
    )
    if row is None:  # pragma: no cover - the conflicting row is committed before the insert returns
        raise NotFound("identity not found")
    row.last_verified_at = now
    return row.subject_id, False


async def is_verified(uow: UnitOfWork, visitor_id: str) -> bool:
    found = await uow.session.scalar(select(VerifiedIdentity.id).where(VerifiedIdentity.subject_id == visitor_id))
    return found is not None


# ---------------------------------------------------------------- settings (settings.read / settings.manage)
async def overview(uow: UnitOfWork, actor: OperatorActor) -> list[dict[str, Any]]:
    """Each site the actor may configure, and whether it has a secret (never the secret)."""
    require(actor, Permission.SETTINGS_READ)
    sites = await workspaces.list_sites(uow, actor)
    rows = (
        await uow.session.scalars(select(IdentitySecret).where(IdentitySecret.site_id.in_([s.id for s in sites])))
    ).all()
    by_site = {r.site_id: r for r in rows}
    return [
        {
            "id": s.id,
            "name": s.name,
            "has_secret": s.id in by_site,
            "created_at": by_site[s.id].created_at if s.id in by_site else None,
        }
        for s in sites
    ]


async def rotate_secret(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, site_id: str) -> str:
    """A new secret for the site, returned once (shown to the administrator, then only held
    encrypted). The old one, if any, is deleted and its key destroyed: signatures made with it
    no longer verify. Links already made stay (the person is the same)."""
    require(actor, Permission.SETTINGS_MANAGE)
    site = await access_site_by_id(uow.session, actor, site_id)
    replaced = await _drop(rt, uow, site.id)
    secret = crypto.new_identity_secret()
    row_id = crypto.new_id()
    key = await rt.keyring.create(uow.session, workspace_id=site.workspace_id, subject_id=row_id)
    await uow.session.flush()
    dialect = uow.session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    stmt = (
        insert(IdentitySecret)
        .values(
            id=row_id,
            workspace_id=site.workspace_id,
            site_id=site.id,
            secret_enc=key.encrypt(secret, _aad(row_id)),
            created_at=clock.now(),
            created_by=actor.operator_id,
        )
        .on_conflict_do_nothing(index_elements=["site_id"])
        .returning(IdentitySecret.id)
    )
    if await uow.session.scalar(stmt) is None:  # another administrator made one meanwhile
        rt.keyring.forget(row_id)
        raise Conflict("the secret was just changed by someone else; reload the page")
    await audit.record(
        rt,
        uow,
        "settings.identity_secret_rotated",
        actor=actor,
        target_type="site",
        target_id=site.id,
        detail={"replaced": replaced},
    )
    return secret


async def remove_secret(rt: Runtime, uow: UnitOfWork, actor: OperatorActor, site_id: str) -> None:
    """Verification off for the site: every claim is ignored from now on."""
    require(actor, Permission.SETTINGS_MANAGE)
    site = await access_site_by_id(uow.session, actor, site_id)
    removed = await _drop(rt, uow, site.id)
    await audit.record(
        rt,
        uow,
        "settings.identity_secret_removed",
        actor=actor,
        target_type="site",
        target_id=site.id,
        detail={"removed": removed},
    )


async def _drop(rt: Runtime, uow: UnitOfWork, site_id: str) -> bool:
    row = await uow.session.scalar(select(IdentitySecret).where(IdentitySecret.site_id == site_id).with_for_update())
    if row is None:
        return False
    await rt.keyring.destroy(uow.session, row.id)
    await uow.session.execute(delete(IdentitySecret).where(IdentitySecret.id == row.id))
    await uow.session.flush()
    return True
