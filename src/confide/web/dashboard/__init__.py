"""The server-rendered dashboard: log-in, the live console shell, Stored Chats, Offline Requests
and Settings.

- ``templating``: the Jinja2 environment, ``render`` and ``error_page``;
- ``auth``: the page's operator (or a redirect to log in), the log-in and log-out pages;
- ``forms``: reading form fields, and the sentences shown when they do not validate;
- ``filters``: the filtered lists, with personal filters kept out of URLs;
- ``errors``: the one exception handler (a ``DomainError`` -> an error page);
- ``pages/<area>.py``: the handlers, thin: parse, authenticate, one service call, render.
"""

from __future__ import annotations

from fastapi import APIRouter

from confide.web.dashboard import auth
from confide.web.dashboard.pages import (
    account,
    account_review,
    activity,
    audit,
    chats,
    consent,
    console,
    directory_settings,
    erasure,
    identity_settings,
    invites,
    login_limits,
    offline,
    prospects,
    redaction,
    requests,
    retention,
    roles,
    settings,
    sso,
    subjects,
)
from confide.web.dashboard.pages import two_factor as two_factor_pages

router = APIRouter(include_in_schema=False)
for _module in (
    auth,
    console,
    chats,
    offline,
    settings,
    roles,
    audit,
    account,
    invites,
    account_review,
    directory_settings,
    sso,
    redaction,  # Settings → Redaction (ADR 0021)
):
    router.include_router(_module.router)
router.include_router(two_factor_pages.router)  # two-factor: log-in second step, account, settings (ADR 0014)
router.include_router(login_limits.router)  # Settings → Security → Login limits
router.include_router(activity.router)  # Visitor Activity and Settings → Sites → Visitor activity (ADR 0019)
router.include_router(identity_settings.router)  # Settings → Verified identity (ADR 0022)
router.include_router(prospects.router)  # Prospects and Settings → Prospects (issue 7 point 6)
router.include_router(consent.router)  # ---- consent: /app/consent, Settings → Privacy purposes (ADR 0018)
router.include_router(retention.router)  # Retention and the record of processing (ADR 0030)
router.include_router(erasure.router)  # the Erase flow and erasure certificates (ADR 0028)
router.include_router(subjects.router)  # Find a person, exports and their e-mailed links (ADR 0026)
router.include_router(requests.router)  # Requests and the public request page (ADR 0029)
