"""Signed, expiring visitor tokens: "visitor V of site S (workspace W)", nothing more."""

from __future__ import annotations

from datetime import datetime, timedelta

from confide.auth.actors import VisitorActor
from confide.core import clock
from confide.core.crypto import Signer
from confide.core.errors import Unauthorized


def issue(signer: Signer, actor: VisitorActor, ttl_s: int) -> tuple[str, datetime]:
    expires = clock.now() + timedelta(seconds=ttl_s)
    token = signer.sign(
        {"v": actor.visitor_id, "s": actor.site_id, "w": actor.workspace_id, "exp": int(expires.timestamp())}
    )
    return token, expires


def verify(signer: Signer, token: object, *, site_id: str) -> VisitorActor:
    """The visitor the token names, if it is genuine, unexpired and for this site."""
    claims = signer.verify(token, clock.now().timestamp()) if isinstance(token, str) else None
    if claims is None or claims.get("s") != site_id:
        raise Unauthorized("invalid or expired visitor token")
    visitor, workspace = claims.get("v"), claims.get("w")
    if not isinstance(visitor, str) or not isinstance(workspace, str):
        raise Unauthorized("invalid or expired visitor token")
    return VisitorActor(visitor_id=visitor, site_id=site_id, workspace_id=workspace)
