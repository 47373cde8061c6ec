"""Personal-data registry entries of the tables of confide.privacy_requests (see core/personal_data.py).

A request is reached from a visitor two ways: by the e-mail's blind index (the requester wrote the
address a visitor also gave), and by the link rows (``privacy_request_visitors``: the widget's own
visitor, or the visitors matched once the requester proved they hold the address).

Erasure *anonymises* a request rather than deleting it: its e-mail, details, blind index, data key
and timeline notes are cleared (set to NULL), while the row (type, channel, dates, states) stays as
proof of how the request was handled (Art. 5(2) accountability, Art. 12(3) deadlines), which the
erasure of the same person must not destroy: the erasure helper completes the request afterwards
(``lifecycle.complete(..., certificate_id=...)``).
"""

from __future__ import annotations

from confide.core.personal_data import (
    NOT_PERSONAL,
    Category,
    Erasure,
    Export,
    Hop,
    Out,
    Personal,
    Reach,
    Storage,
    Table,
    WrappedKey,
    not_personal,
    out,
    reach,
    sealed,
)

_N = NOT_PERSONAL
PURPOSE = "handle data-subject requests (Art. 12-22)"
BASIS = "Art. 6(1)(c) legal obligation: Art. 12 to 22 GDPR"
_NOTE = "cleared on erasure; the request's dates and states stay as proof of handling (Art. 5(2))"


def _data(category: Category, storage: Storage = Storage.ENCRYPTED, *, exported: bool = True,
          erasure: Erasure = Erasure.ANONYMISE) -> Personal:
    return Personal(category, "visitor", PURPOSE, BASIS, "privacy_request", storage, erasure, exported, _NOTE)


# A request's values are encrypted under the request's own key (``models``), not a subject key.
_OWN_KEY = WrappedKey("privacy_requests", "id", "privacy_request:{id}")
_PARENT_KEY = WrappedKey("privacy_requests", "request_id", "privacy_request:{id}")

_BY_EMAIL = Reach("visitor", "id", via=(Hop("email_bidx", "visitors", key="email_bidx"),))
_BY_LINK = Reach("visitor", "visitor_id", via=(Hop("id", "privacy_request_visitors", key="request_id"),))

TABLES: dict[str, Table] = {
    "privacy_requests": Table(
        {
            **not_personal(
                "id", "workspace_id", "site_id", "type", "channel", "state", "received_at", "due_at",
                "extended_months", "assignee_id", "created_by", "verified_at", "verified_by", "code_expires_at",
                "code_attempts", "codes_sent", "closed_at", "export_id", "certificate_id", "reminded_soon_for",
                "reminded_overdue_for",
                # a keyed digest of a short-lived random code: says nothing about anyone
                "code_digest",
            ),
            "email_enc": _data(Category.CONTACT),
            "email_bidx": _data(Category.PSEUDONYMOUS, Storage.BLIND_INDEX, exported=False),
            "details_enc": _data(Category.CONTENT),
            "wrapped_key": _data(Category.KEY, exported=False, erasure=Erasure.DESTROY_KEY),
        },
        export=Export(
            "Your requests about your data",
            100,
            {
                **out("id", "type", "channel", "state", "received_at", "due_at", "extended_months", "verified_at",
                      "closed_at"),
                **sealed("privacy_requests", "email", wrapped=_OWN_KEY),
                **sealed("privacy_requests", "details", wrapped=_OWN_KEY),
            },
        ),
        # Rectification (ADR 0032): the address a request came from is the record of what was
        # asked and where the answer goes (Art. 5(2), 12(3)); erasure clears it. Its values are
        # under the request's own key, which a subject's key rotation leaves be.
        not_rectified="the address the request was received from: kept as received (proof of handling)",
        own_key="encrypted under the request's own key, wrapped in the row",
        reach=(_BY_EMAIL, _BY_LINK),
    ),
    "privacy_request_visitors": Table(
        not_personal("request_id", "visitor_id"),
        reach=reach("visitor", "visitor_id"),
    ),
    "privacy_request_events": Table(
        {
            **not_personal("id", "request_id", "seq", "at", "kind", "actor_type", "actor_id"),
            "note_enc": _data(Category.CONTENT),
        },
        export=Export(
            "How your requests were handled",
            110,
            {
                **out("request_id", "seq", "at", "kind"),
                "note_enc": Out("note", aad="privacy_request_events.note:{id}", wrapped=_PARENT_KEY),
            },
        ),
        own_key="encrypted under the request's own key (privacy_requests.wrapped_key)",
        reach=(
            Reach("visitor", "id", via=(Hop("request_id", "privacy_requests"),
                                        Hop("email_bidx", "visitors", key="email_bidx"))),
            Reach("visitor", "visitor_id", via=(Hop("request_id", "privacy_requests"),
                                                Hop("id", "privacy_request_visitors", key="request_id"))),
        ),
    ),
}
