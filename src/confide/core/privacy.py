"""Personal-data registry entries of the tables of confide.core (see core/personal_data.py for the format)."""

from __future__ import annotations

from confide.core.personal_data import (
    CONTRACT,
    NOT_PERSONAL,
    STAFF_BASIS,
    Category,
    Erasure,
    Personal,
    Storage,
    Table,
    reach,
)

_N = NOT_PERSONAL

TABLES: dict[str, Table] = {
    # reach: subject_keys.subject_id is a visitor's id (also directory settings rows: not subjects)
    "subject_keys": Table(
        {
            "subject_id": _N,
            "workspace_id": _N,
            "created_at": _N,
            "destroyed_at": _N,
            "wrapped_key": Personal(
                Category.KEY,
                "visitor",
                "encrypt the subject's data",
                CONTRACT,
                "subject",
                Storage.ENCRYPTED,
                Erasure.DESTROY_KEY,
                exported=False,
                note="wrapped under the master key; destroyed on erasure",
            ),
        },
        reach=reach("visitor", "subject_id"),
    ),
    # ---- mail helper (0008): durable jobs, invitations, account review
    # A job's payload may hold a recipient's address and a link: encrypted under a data key of the
    # job's own (wrapped under the master key); the row is deleted once done, and the payload and
    # key are cleared when the job fails for good (core/jobs.py).
    # reach: jobs.subject_id -> operators (or an invitation's id: the invitee has no account yet)
    "jobs": Table(
        {
            **{
                c: _N
                for c in (
                    "id",
                    "kind",
                    "workspace_id",
                    "subject_id",
                    "state",
                    "attempts",
                    "run_after",
                    "locked_by",
                    "locked_until",
                    "last_error",
                    "created_at",
                    "finished_at",
                    "purpose",  # a purpose key (which processing the job serves, consent.may), not personal
                )
            },
            "payload_enc": Personal(
                Category.CONTACT,
                "operator",
                "deliver account e-mails",
                STAFF_BASIS,
                "job",
                Storage.ENCRYPTED,
                Erasure.DELETE_ROW,
                exported=False,
                note="recipients, subject and body of a queued e-mail; gone once sent or given up on",
            ),
            "wrapped_key": Personal(
                Category.KEY,
                "operator",
                "encrypt a job's payload",
                STAFF_BASIS,
                "job",
                Storage.ENCRYPTED,
                Erasure.DESTROY_KEY,
                exported=False,
                note="wrapped under the master key; cleared with the payload",
            ),
        },
        # Account e-mails name a staff member; a marketing e-mail (consent, ADR 0018) names the
        # visitor it goes to: ids are random, so one id never names both.
        reach=(reach("operator", "subject_id"), reach("visitor", "subject_id")),
        # Rectification and key rotation (ADR 0032): a queued e-mail is sent as it was queued and
        # gone within the retry window; its payload is under a key of its own in the row.
        not_rectified="a queued e-mail, sent as queued and deleted once sent or given up on",
        own_key="the payload is under a key of its own, wrapped in the row",
    ),
}
