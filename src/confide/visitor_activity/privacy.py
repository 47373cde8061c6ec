"""Personal-data registry entries of the tables of confide.visitor_activity (format: core/personal_data.py)."""

from __future__ import annotations

from confide.core.personal_data import (
    NOT_PERSONAL,
    Category,
    Export,
    Out,
    Personal,
    Storage,
    Table,
    out,
    reach,
    sealed,
    visitor_data,
)

_N = NOT_PERSONAL


def _activity(
    storage: Storage = Storage.ENCRYPTED,
    category: Category = Category.BEHAVIOUR,
    *,
    exported: bool = True,
    note: str = "",
) -> Personal:
    return visitor_data(
        category,
        storage,
        retention="visitor_activity",
        purpose="visitor activity: the pages seen while a chat is possible",
        basis="Art. 6(1)(a) consent (activity_tracking) / 6(1)(f) documented legitimate interest",
        exported=exported,
        note=note,
    )


TABLES: dict[str, Table] = {
    # A site's tracking choices: no personal data (the justification is the business's own text).
    "activity_settings": Table(
        {
            c: _N
            for c in ("site_id", "workspace_id", "basis", "justification", "ip_mode", "ua_mode", "updated_at",
                      "updated_by")
        },
    ),
    "activity_pages": Table(
        {
            "id": _N,
            "workspace_id": _N,
            "site_id": _N,
            "visitor_id": _N,
            "viewed_at": _activity(Storage.PLAIN, note="when the page was seen: orders the trail"),
            "url_enc": _activity(),
            "title_enc": _activity(),
            "referrer_enc": _activity(),
            "ip_enc": _activity(note="per site: none, the /24 or /48 network, or the full address"),
            "ua_enc": _activity(note="per site: none, the browser family, or the full User-Agent"),
            "seconds_on_page": _activity(Storage.PLAIN, note="a duration, shown in the trail"),
        },
        reach=reach("visitor", "visitor_id"),
        export=Export(
            "Visitor activity (pages seen)",
            50,
            {
                **out("id"),
                "site_id": Out("site"),
                "viewed_at": Out("viewed_at"),
                **sealed("activity_pages", "url"),
                **sealed("activity_pages", "title"),
                **sealed("activity_pages", "referrer"),
                **sealed("activity_pages", "ip", name="ip_address"),
                **sealed("activity_pages", "ua", name="user_agent"),
                "seconds_on_page": Out("seconds_on_page"),
            },
        ),
    ),
    "activity_page_terms": Table(
        {"page_id": _N, "term": _activity(Storage.BLIND_INDEX, Category.PSEUDONYMOUS, exported=False)},
        reach=reach("visitor", "page_id -> activity_pages.visitor_id"),
    ),
}
