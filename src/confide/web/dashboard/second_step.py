"""The second step of a log-in, as the browser sees it: the ticket cookie and the redirect to it.

A first factor that passed for an operator who has a second factor (or must enrol one) gets no
session: ``login_flow.complete_login`` returns a ticket, which goes into a short-lived HttpOnly,
SameSite=Strict cookie scoped to ``/login/two-factor``, and the browser goes there. Any first
factor's page (password, directory, single sign-on) ends with ``after_first_factor``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi.responses import RedirectResponse, Response

from confide.two_factor.service import ENROL, TICKET_TTL_S, Ticket
from confide.web.login_flow import LoginResult
from confide.web.security import set_session_cookie

TICKET_COOKIE = "confide_2fa"
PATH = "/login/two-factor"


def set_ticket_cookie(response: Response, token: str, *, secure: bool) -> None:
    response.set_cookie(
        TICKET_COOKIE, token, max_age=TICKET_TTL_S, httponly=True, samesite="strict", secure=secure, path=PATH
    )


def clear_ticket_cookie(response: Response) -> None:
    response.delete_cookie(TICKET_COOKIE, path=PATH)


def second_step_url(ticket: Ticket, target: str) -> str:
    """Where a first factor that passed goes on when a second factor is due (or must be enrolled)."""
    return PATH + ("/enrol" if ticket.stage == ENROL else "") + "?" + urlencode({"next": target})


def after_first_factor(result: LoginResult, target: str, *, ttl_s: int, secure: bool) -> Response:
    """The answer to a first factor that passed: the session (and on to ``target``), or the second step."""
    if result.second_factor is not None:
        response = RedirectResponse(second_step_url(result.second_factor, target), status_code=303)
        set_ticket_cookie(response, result.second_factor.token, secure=secure)
        return response
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, result.token, ttl_s=ttl_s, secure=secure)
    return response
