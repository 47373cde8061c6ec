"""One-click withdrawal from e-mail (ADR 0018): the signed link of one subject and one purpose, its
page and its POST, the RFC 2369 / RFC 8058 unsubscribe headers, and the one way to queue a
marketing message (only when ``may`` allows it, always with its link)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

from confide.consent import purposes as K
from confide.consent.ledger import latest_record, record, state_of
from confide.consent.models import ConsentRecord
from confide.consent.notices import get_purpose
from confide.consent.questions import may
from confide.core import clock, mail
from confide.core.db import UnitOfWork
from confide.core.errors import NotFound
from confide.core.runtime import Runtime

LINK_TTL_S = 20 * 365 * 24 * 3600  # the e-mail link does not need to expire; the signature is what counts


def withdrawal_token(rt: Runtime, *, workspace_id: str, subject_id: str, purpose: str) -> str:
    exp = int((clock.now() + timedelta(seconds=LINK_TTL_S)).timestamp())
    return rt.consent_links.sign({"w": workspace_id, "s": subject_id, "p": purpose, "exp": exp})


def withdrawal_url(rt: Runtime, *, workspace_id: str, subject_id: str, purpose: str) -> str:
    token = withdrawal_token(rt, workspace_id=workspace_id, subject_id=subject_id, purpose=purpose)
    return f"{rt.settings.base_url}/consent/withdraw/{quote(token, safe='')}"


def marketing_headers(url: str) -> dict[str, str]:
    """RFC 2369 / RFC 8058 one-click unsubscribe headers for a marketing message."""
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def open_withdrawal_token(rt: Runtime, token: object) -> tuple[str, str, str]:
    """(workspace id, subject id, purpose key) of a genuine link; ``NotFound`` for anything else."""
    claims = rt.consent_links.verify(token, clock.now().timestamp()) if isinstance(token, str) else None
    if claims is None:
        raise NotFound("this link is not valid")
    w, s, p = claims.get("w"), claims.get("s"), claims.get("p")
    if not (isinstance(w, str) and isinstance(s, str) and isinstance(p, str)):
        raise NotFound("this link is not valid")
    return w, s, p


async def link_view(rt: Runtime, uow: UnitOfWork, token: object) -> dict[str, Any]:
    workspace_id, subject_id, key = open_withdrawal_token(rt, token)
    purpose = await get_purpose(uow, workspace_id, key)
    if purpose is None:
        raise NotFound("this link is not valid")
    st = await state_of(uow, purpose, subject_id)
    return {"name": purpose.name, "key": purpose.key, "granted": bool(st.granted) and st.valid}


async def withdraw_by_link(rt: Runtime, uow: UnitOfWork, token: object) -> ConsentRecord:
    """Withdraw the link's one purpose. A link used again (mail clients may POST twice) appends
    nothing more while the withdrawal stands."""
    workspace_id, subject_id, key = open_withdrawal_token(rt, token)
    latest = await latest_record(uow, workspace_id, subject_id, key)
    if latest is not None and not latest.granted:
        return latest
    return await record(rt, uow, workspace_id=workspace_id, subject_id=subject_id, purpose=key, granted=False,
                        source=K.EMAIL_LINK)


async def enqueue_marketing_mail(
    rt: Runtime,
    uow: UnitOfWork,
    *,
    workspace_id: str,
    subject_id: str,
    to: str,
    subject: str,
    text: str,
    purpose: str = K.MARKETING_EMAIL,
) -> str | None:
    """Queue a marketing message only if ``may`` allows it, with its one-click withdrawal link in
    the body and the List-Unsubscribe headers. Returns the job id, or None when not allowed."""
    if not await may(uow, workspace_id=workspace_id, subject_id=subject_id, purpose=purpose):
        return None
    url = withdrawal_url(rt, workspace_id=workspace_id, subject_id=subject_id, purpose=purpose)
    body = f"{text}\n\n--\nTo stop these e-mails, open: {url}\n"
    return mail.enqueue_mail(rt, uow, to=[to], subject=subject, text=body, workspace_id=workspace_id,
                             subject_id=subject_id, purpose=purpose, headers=marketing_headers(url))
