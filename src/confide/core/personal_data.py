"""The personal-data registry: every table and every column, classified.

A test walks the ORM metadata and fails when a table or column is missing here, so a new column
cannot hold personal data unnoticed. Subject export, erasure, retention and the record of
processing activities (later issues) are driven from this registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    IDENTITY = "identity"  # names
    CONTACT = "contact"  # e-mail, phone
    CONTENT = "content"  # what the subject wrote
    PROFILE = "profile"  # custom pre-chat answers
    BEHAVIOUR = "behaviour"  # pages visited, ratings
    CONSENT = "consent"  # choices made
    ACCOUNT = "account"  # staff accounts
    PSEUDONYMOUS = "pseudonymous"  # keyed hashes that only match a known value
    KEY = "key"  # wrapped data keys


class Storage(StrEnum):
    ENCRYPTED = "encrypted"  # AES-GCM under the subject's data key
    BLIND_INDEX = "blind_index"  # keyed HMAC
    PLAIN = "plain"  # stored as is (reason given in ``note``)


class Erasure(StrEnum):
    DELETE_ROW = "delete_row"  # the row is deleted with the subject
    DESTROY_KEY = "destroy_key"  # crypto-shredding
    ANONYMISE = "anonymise"  # staff accounts are anonymised, not deleted (audit trail)


@dataclass(frozen=True)
class Personal:
    category: Category
    subject: str  # whose data: "visitor" | "operator"
    purpose: str
    lawful_basis: str
    retention: str  # retention class
    storage: Storage
    erasure: Erasure = Erasure.DELETE_ROW
    exported: bool = True
    note: str = ""


class _NotPersonal:
    def __repr__(self) -> str:
        return "NOT_PERSONAL"


NOT_PERSONAL = _NotPersonal()
Classification = Personal | _NotPersonal


@dataclass(frozen=True)
class Table:
    subject_column: str | None  # column that names the data subject, None for non-personal tables
    columns: dict[str, Classification]


_CHAT = "provide live chat support"
_CONTRACT = "Art. 6(1)(b) steps at the data subject's request / legitimate interest 6(1)(f)"
_CONSENT_BASIS = "Art. 7 accountability: proof of consent"
_STAFF = "operate staff accounts"
_STAFF_BASIS = "Art. 6(1)(b) employment contract / 6(1)(f) security"


def _visitor(
    category: Category,
    storage: Storage = Storage.ENCRYPTED,
    *,
    retention: str = "chat",
    purpose: str = _CHAT,
    basis: str = _CONTRACT,
    exported: bool = True,
    note: str = "",
) -> Personal:
    return Personal(category, "visitor", purpose, basis, retention, storage, Erasure.DELETE_ROW, exported, note)


def _operator(category: Category, note: str = "") -> Personal:
    return Personal(category, "operator", _STAFF, _STAFF_BASIS, "account", Storage.PLAIN, Erasure.ANONYMISE, True, note)


_N = NOT_PERSONAL

REGISTRY: dict[str, Table] = {
    "workspaces": Table(None, {"id": _N, "name": _N, "created_at": _N}),
    "sites": Table(
        None,
        {
            c: _N
            for c in (
                "id",
                "workspace_id",
                "name",
                "site_key",
                "allowed_origins",
                "prechat_fields",
                "purposes",
                "privacy_policy_url",
                "greeting",
                "color",
                "timezone",
                "business_hours",
                "created_at",
            )
        },
    ),
    "departments": Table(
        None,
        {
            c: _N
            for c in (
                "id",
                "workspace_id",
                "site_id",
                "name",
                "strategy",
                "offer_timeout_s",
                "rr_last_operator_id",
                "created_at",
            )
        },
    ),
    "canned_replies": Table(
        None, {c: _N for c in ("id", "workspace_id", "department_id", "shortcut", "title", "text", "created_at")}
    ),
    # Origins of pages that embedded a site's widget without being allowed: a configuration hint for
    # the site's administrators; only scheme://host[:port] is kept, never a visitor's URL or address.
    "refused_origins": Table(None, {c: _N for c in ("site_id", "origin", "count", "first_seen", "last_seen")}),
    "subject_keys": Table(
        "subject_id",
        {
            "subject_id": _N,
            "workspace_id": _N,
            "created_at": _N,
            "destroyed_at": _N,
            "wrapped_key": Personal(
                Category.KEY,
                "visitor",
                "encrypt the subject's data",
                _CONTRACT,
                "subject",
                Storage.ENCRYPTED,
                Erasure.DESTROY_KEY,
                exported=False,
                note="wrapped under the master key; destroyed on erasure",
            ),
        },
    ),
    "operators": Table(
        "id",
        {
            "id": _N,
            "workspace_id": _N,
            "password_hash": _N,
            "role": _N,
            "status": _N,
            "max_chats": _N,
            "disabled": _N,
            "must_change_password": _N,
            "password_changed_at": _N,
            "last_assigned_at": _N,
            "created_at": _N,
            "last_login_at": _N,  # mail helper (0008): the account review's last login
            "last_login_method": _N,
            "email": _operator(Category.ACCOUNT, "login name; looked up on every login, so kept plain"),
            "name": _operator(Category.IDENTITY, "shown to visitors as the operator's name"),
        },
    ),
    "operator_departments": Table(None, {"operator_id": _N, "department_id": _N}),
    # Custom roles: a name and description an administrator chose for a job, not about a person.
    "roles": Table(
        None,
        {c: _N for c in ("id", "workspace_id", "name", "description", "scope", "permissions", "created_at",
                          "updated_at")},
    ),
    # Directory login and single sign-on (identity/): settings hold no one's personal data (the
    # service account is not a person; its password and the client secrets are stored encrypted).
    "ldap_directories": Table(
        None,
        {
            c: _N
            for c in (
                "id", "workspace_id", "enabled", "server_urls", "tls_mode", "ca_cert_pem", "bind_dn",
                "bind_password_enc", "user_base_dn", "user_filter", "attr_email", "attr_name", "attr_groups",
                "group_roles", "group_departments", "required_groups", "default_role", "auto_create",
                "login_domains", "timeout_s", "recheck_interval_s", "updated_at",
            )
        },
    ),
    "oidc_providers": Table(
        None,
        {
            c: _N
            for c in (
                "id", "workspace_id", "name", "enabled", "issuer", "client_id", "client_secret_enc", "scopes",
                "email_claim", "require_email_verified", "group_claim", "group_roles", "group_departments",
                "default_role", "allowed_domains", "auto_create", "created_at", "updated_at",
            )
        },
    ),
    "directory_accounts": Table(
        "operator_id",
        {
            "operator_id": _N,
            "workspace_id": _N,
            "source": _N,
            "provider_id": _N,
            "created_at": _N,
            "checked_at": _N,
            "external_id": _operator(
                Category.ACCOUNT, "the directory entry's DN (often holds the name) or the provider's subject id; "
                "looked up at every directory log-in and re-check, so kept plain"
            ),
        },
    ),
    # Pseudonymous ids and a time a few seconds ahead; rows are deleted once expired (ADR 0005).
    # The audit log names actors and targets by id only (audit.service refuses free text).
    "audit_events": Table(
        None,
        {
            c: _N
            for c in (
                "seq",
                "at",
                "workspace_id",
                "actor_type",
                "actor_id",
                "action",
                "outcome",
                "target_type",
                "target_id",
                "detail",
                "prev_hash",
                "hash",
            )
        },
    ),
    "audit_head": Table(None, {c: _N for c in ("id", "seq", "hash")}),
    "audit_prune": Table(None, {c: _N for c in ("id", "upto")}),  # a flag inside one transaction
    "presence": Table(None, {c: _N for c in ("kind", "subject_id", "node_id", "expires_at")}),
    # accounts (ADR 0012): sessions keep a short client description ("Firefox on Linux") and no
    # address; the throttle keys are keyed hashes of a typed e-mail or an address, forgotten after a day.
    "operator_sessions": Table(
        "operator_id",
        {
            **{
                c: _N
                for c in (
                    "id", "token_digest", "operator_id", "created_at", "expires_at", "revoked_at", "last_seen_at",
                    "idle_timeout_s", "method", "end_reason",
                )
            },
            "client": _operator(Category.ACCOUNT, "browser and system family only, shown in the user's session list"),
        },
    ),
    "password_history": Table(None, {c: _N for c in ("id", "operator_id", "password_hash", "created_at")}),
    "account_policies": Table(
        None,
        {
            c: _N
            for c in (
                "workspace_id", "password_min_length", "password_max_age_days", "session_idle_timeout_s",
                "session_max_per_operator", "updated_at",
            )
        },
    ),
    "login_throttle": Table(None, {c: _N for c in ("key", "failures", "last_failure_at", "blocked_until")}),
    # ---- mail helper (0008): durable jobs, invitations, account review
    # A job's payload may hold a recipient's address and a link: encrypted under a data key of the
    # job's own (wrapped under the master key); the row is deleted once done, and the payload and
    # key are cleared when the job fails for good (core/jobs.py).
    "jobs": Table(
        "subject_id",
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
                )
            },
            "payload_enc": Personal(
                Category.CONTACT,
                "operator",
                "deliver account e-mails",
                _STAFF_BASIS,
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
                _STAFF_BASIS,
                "job",
                Storage.ENCRYPTED,
                Erasure.DESTROY_KEY,
                exported=False,
                note="wrapped under the master key; cleared with the payload",
            ),
        },
    ),
    # The invited person's address and name, until they accept (then the account holds them).
    "operator_invites": Table(
        "id",
        {
            **{
                c: _N
                for c in (
                    "id",
                    "workspace_id",
                    "token_digest",
                    "role",
                    "department_ids",
                    "invited_by",
                    "created_at",
                    "expires_at",
                    "used_at",
                    "revoked_at",
                    "operator_id",
                )
            },
            "email": _operator(Category.ACCOUNT, "the invited login name; compared with existing accounts"),
            "name": _operator(Category.IDENTITY, "the name the invitation proposes"),
        },
    ),
    "account_review_policies": Table(
        None, {c: _N for c in ("workspace_id", "interval_days", "inactive_days", "updated_at")}
    ),
    # Account ids with role, method and state codes at sign-off: ids and codes only, no names.
    "account_reviews": Table(
        None, {c: _N for c in ("id", "workspace_id", "signed_by", "signed_at", "account_count", "accounts")}
    ),
    # -- two-factor (ADR 0014): the TOTP secret encrypted, codes and tickets as digests only.
    "totp_factors": Table(
        "operator_id",
        {
            "operator_id": _N,
            "created_at": _N,
            "confirmed_at": _N,
            "last_used_step": _N,
            "secret_enc": Personal(
                Category.ACCOUNT,
                "operator",
                _STAFF,
                _STAFF_BASIS,
                "account",
                Storage.ENCRYPTED,
                Erasure.DELETE_ROW,
                exported=False,
                note="TOTP shared secret, AES-GCM under a key derived from the master key; never exported",
            ),
        },
    ),
    "recovery_codes": Table(None, {c: _N for c in ("id", "operator_id", "code_digest", "created_at", "used_at")}),
    "passkey_credentials": Table(
        "operator_id",
        {
            "id": _N,
            "operator_id": _N,
            "credential_id": _N,
            "public_key": _N,
            "sign_count": _N,
            "created_at": _N,
            "last_used_at": _N,
            "label": _operator(Category.ACCOUNT, "the name an operator gave their passkey (e.g. a device)"),
        },
    ),
    "two_factor_tickets": Table(
        None,
        {
            c: _N
            for c in (
                "id",
                "token_digest",
                "operator_id",
                "method",
                "stage",
                "attempts",
                "created_at",
                "expires_at",
                "used_at",
            )
        },
    ),
    "webauthn_challenges": Table(None, {c: _N for c in ("operator_id", "purpose", "challenge", "expires_at")}),
    "two_factor_policies": Table(None, {c: _N for c in ("workspace_id", "require_all", "roles", "updated_at")}),
    # Login limits (ADR 0016): address ranges and time windows of a role or an operator, set by
    # administrators; the ranges are networks of the business, not any person's address.
    "login_limits": Table(
        None,
        {
            c: _N
            for c in (
                "id",
                "workspace_id",
                "subject_type",
                "subject_id",
                "ranges",
                "windows",
                "timezone",
                "updated_at",
                "updated_by",
            )
        },
    ),
    "visitors": Table(
        "id",
        {
            "id": _N,
            "workspace_id": _N,
            "site_id": _N,
            "created_at": _N,
            "name_enc": _visitor(Category.IDENTITY),
            "email_enc": _visitor(Category.CONTACT),
            "email_bidx": _visitor(Category.PSEUDONYMOUS, Storage.BLIND_INDEX, exported=False),
            "phone_enc": _visitor(Category.CONTACT),
            "fields_enc": _visitor(Category.PROFILE),
            "consents": _visitor(
                Category.CONSENT,
                Storage.PLAIN,
                purpose="record consent choices",
                basis=_CONSENT_BASIS,
                note="purpose keys, booleans and notice versions only",
            ),
        },
    ),
    "visitor_terms": Table(
        "visitor_id",
        {
            "visitor_id": _N,
            "term": _visitor(Category.PSEUDONYMOUS, Storage.BLIND_INDEX, exported=False),
        },
    ),
    "conversations": Table(
        "visitor_id",
        {
            "id": _N,
            "workspace_id": _N,
            "site_id": _N,
            "department_id": _N,
            "visitor_id": _N,
            "operator_id": _N,
            "status": _N,
            "seq": _N,
            "visitor_read_seq": _N,
            "operator_read_seq": _N,
            "offered_to": _N,
            "offer_expires_at": _N,
            "offered_history": _N,
            "created_at": _N,
            "accepted_at": _N,
            "closed_at": _N,
            "closed_by": _N,
            "last_message_at": _N,
            "queued_at": _N,
            "unanswered_reason": _N,
            "unanswered_since": _N,
            "page_url_enc": _visitor(Category.BEHAVIOUR),
            "rating": _visitor(Category.BEHAVIOUR, Storage.PLAIN, note="an integer 1-5, needed for reports"),
            "rating_comment_enc": _visitor(Category.CONTENT),
        },
    ),
    "messages": Table(
        "conversation_id",
        {
            "id": _N,
            "conversation_id": _N,
            "seq": _N,
            "sender": _N,
            "sender_id": _N,
            "client_id": _N,
            "created_at": _N,
            "body_enc": _visitor(Category.CONTENT),
        },
    ),
    "conversation_terms": Table(
        "conversation_id",
        {
            "conversation_id": _N,
            "term": _visitor(Category.PSEUDONYMOUS, Storage.BLIND_INDEX, exported=False),
        },
    ),
    "offline_requests": Table(
        "visitor_id",
        {
            "id": _N,
            "workspace_id": _N,
            "site_id": _N,
            "department_id": _N,
            "visitor_id": _N,
            "created_at": _N,
            "handled_at": _N,
            "handled_by": _N,
            "message_enc": _visitor(Category.CONTENT, retention="offline_request"),
            "page_url_enc": _visitor(Category.BEHAVIOUR, retention="offline_request"),
        },
    ),
    # ---- redaction (issue 7 point 7, ADR 0021)
    # Per-site policy set by administrators: switches and the business's own patterns, no person's data.
    "redaction_policies": Table(
        None,
        {
            c: _N
            for c in (
                "site_id",
                "workspace_id",
                "cards",
                "ibans",
                "keep_originals",
                "patterns",
                "version",
                "updated_at",
                "updated_by",
            )
        },
    ),
    # reach: redacted_originals.subject_id -> visitors (also conversation_id -> conversations -> visitor,
    # offline_request_id -> offline_requests -> visitor); text_enc under the visitor's data key.
    "redacted_originals": Table(
        "subject_id",
        {
            "id": _N,
            "workspace_id": _N,
            "site_id": _N,
            "subject_id": _N,
            "conversation_id": _N,
            "offline_request_id": _N,
            "ref_kind": _N,
            "ref_id": _N,
            "kinds": _N,
            "created_at": _N,
            "text_enc": _visitor(
                Category.CONTENT,
                purpose="keep what was masked at ingest, for authorised review (chats.view_redacted)",
                note="card numbers, IBANs or matches of the site's patterns as the visitor typed them",
            ),
        },
    ),
    # ---- end redaction
}


def personal_columns() -> list[tuple[str, str, Personal]]:
    """Every (table, column, classification) that holds personal data."""
    return [
        (table, column, kind)
        for table, entry in REGISTRY.items()
        for column, kind in entry.columns.items()
        if isinstance(kind, Personal)
    ]
