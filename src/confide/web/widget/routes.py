"""The embeddable widget (launcher + chat UI) and the demo page that embeds it."""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from confide.web.api.deps import StateDep
from confide.web.permits import public
from confide.workspaces import service as workspaces

STATIC = Path(__file__).parent / "static"
router = APIRouter(include_in_schema=False)


@cache
def _asset(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def _js(name: str) -> Response:
    return Response(
        _asset(name),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


@router.get("/widget.js", dependencies=[public()])
async def launcher() -> Response:
    return _js("widget.js")


@router.get("/widget/app.js", dependencies=[public()])
async def chat_app() -> Response:
    return _js("app.js")


@router.get("/widget/activity.js", dependencies=[public()])  # Visitor Activity (ADR 0019), imported by app.js
async def activity_module() -> Response:
    return _js("activity.js")
@router.get("/widget/identity.js", dependencies=[public()])
async def identity_module() -> Response:
    """Verified visitor identity in the widget (ADR 0022), imported by app.js."""
    return _js("identity.js")
@router.get("/widget/privacy.js", dependencies=[public()])
async def privacy_view() -> Response:
    """The widget's Privacy view (ADR 0018), imported by app.js on first use."""
    return _js("privacy.js")
@router.get("/widget/redaction.js", dependencies=[public()])
async def chat_redaction_notice() -> Response:
    """The chat UI's redaction notice (an ES module imported by app.js)."""
    return _js("redaction.js")


@router.get("/demo", response_class=HTMLResponse, dependencies=[public()])
async def demo(request: Request, state: StateDep) -> HTMLResponse:
    """A stand-in for a business's website, with the one script tag a business adds."""
    async with state.rt.db.unit_of_work(readonly=True) as uow:
        site = await workspaces.first_site(uow)
    if site is None:
        return HTMLResponse("<p>No site yet: run <code>confide demo</code>.</p>", status_code=404)
    base = str(request.base_url).rstrip("/")
    # The launcher takes the site's colour from the tag itself: right from the first paint, with no request.
    colour = html.escape(site.color)
    tag = f'<script src="{base}/widget.js" data-site="{site.site_key}" data-color="{colour}" async></script>'
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo shop</title>
<style>body{{font-family:system-ui,sans-serif;max-width:720px;margin:40px auto;padding:0 16px 96px;line-height:1.5}}
body{{color:#1f2937}}
pre{{white-space:pre-wrap;overflow-wrap:anywhere;background:#f3f4f6;padding:12px;border-radius:8px}}
a{{color:#1d4ed8;overflow-wrap:anywhere}}</style>
</head><body>
<main>
<h1>Demo shop</h1>
<p>This page stands in for a business's website. The chat button in the corner is Confide's widget,
added with one script tag:</p>
<pre><code>{html.escape(tag)}</code></pre>
<p>Operators answer at <a href="/app">{base}/app</a>.</p>
</main>
{tag}
</body></html>"""
    return HTMLResponse(page)
