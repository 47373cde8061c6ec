"""Settings: the only reader of the environment (prefix ``CONFIDE_``).

Secrets are ``SecretStr`` so that ``repr(settings)`` and logs never show them.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONFIDE_", extra="ignore")

    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Public base URL (scheme://host[:port]) used in the demo page and e-mails; derived when empty.
    public_url: str = ""
    database_url: str = ""  # empty: SQLite file in data_dir
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    redis_url: str = ""  # empty: in-process broker
    master_key: SecretStr | None = None  # base64url 32 bytes; empty: generated into data_dir/master.key
    secret_key: SecretStr | None = None  # signs tokens; empty: derived from the master key
    log_level: str = "info"
    log_json: bool = False
    # Client addresses in the access log: none (default), truncated (/24, /48) or keyed (an HMAC
    # under a per-process key: correlates one run's lines, nothing else).
    log_client_address: Literal["none", "truncated", "keyed"] = "none"

    # Security and limits
    session_ttl_s: int = 12 * 3600  # the absolute session lifetime
    visitor_token_ttl_s: int = 12 * 3600
    cookie_secure: bool = False  # set true behind TLS: Secure cookie named __Host-confide_session
    # Rates per visitor / per operator across all its sockets (token buckets: burst, then rate per second).
    visitor_msg_rate: float = 1.0  # 10 messages in any 10 s
    visitor_msg_burst: float = 10.0
    visitor_typing_rate: float = 3.0  # 30 typing frames per 10 s
    visitor_typing_burst: float = 30.0
    operator_msg_rate: float = 5.0  # 30 at once, then 5 per second
    operator_msg_burst: float = 30.0
    operator_typing_rate: float = 3.0
    operator_typing_burst: float = 30.0
    # Visitor Activity reports (page views) per visitor: 30 at once, then one every 5 s.
    visitor_activity_rate: float = Field(default=0.2, gt=0)
    visitor_activity_burst: float = Field(default=30.0, ge=1)
    # Caps per node (0: none): open sockets per visitor and per client address, chats started per address.
    max_sockets_per_visitor: int = Field(default=8, ge=0)
    max_sockets_per_address: int = Field(default=100, ge=0)
    conversations_per_address_per_hour: int = Field(default=30, ge=0)
    ws_hello_timeout_s: float = Field(default=10.0, gt=0)  # a visitor socket must say hello within this
    max_frame_bytes: int = 16 * 1024
    send_queue_frames: int = 256  # frames buffered per socket before it is dropped as a slow consumer
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536

    # Accounts: passwords, log-in throttling, sessions (docs/security.md, ADR 0012). The password
    # policy, the session cap and the timeouts below are defaults; each workspace may set its own
    # in Settings -> Security -> Passwords.
    password_min_length: int = Field(default=12, ge=12, le=128)
    password_history: int = Field(default=5, ge=0, le=24)  # earlier passwords that may not be reused
    password_max_age_days: int = Field(default=0, ge=0, le=3650)  # 0: never expires (NIST SP 800-63B)
    # Throttling, per typed e-mail and per client address: free attempts, then a delay that doubles
    # from ``login_delay_base_s`` up to ``login_delay_max_s``; counters are forgotten after a quiet while.
    login_free_failures: int = Field(default=2, ge=0)  # the 3rd failure in a row starts the delays
    login_address_free_failures: int = Field(default=10, ge=0)  # an address may be shared (NAT, office)
    login_delay_base_s: float = Field(default=1.0, gt=0)
    login_delay_max_s: float = Field(default=900.0, gt=0)  # never locked out for good
    login_forget_s: float = Field(default=86400.0, gt=0)
    # A refused directory (LDAP) log-in is answered no sooner than this after it began, so that an
    # unknown login (the directory's search finds nobody) and a wrong password (search, then bind)
    # take the same time, as the dummy argon2 check does for local accounts.
    directory_login_floor_s: float = Field(default=0.3, ge=0, le=10)
    session_idle_timeout_s: int = Field(default=30 * 60, ge=60)
    session_max_per_operator: int = Field(default=0, ge=0)  # 0: no cap
    session_check_s: float = Field(default=5.0, gt=0)  # open consoles re-check their session this often
    session_touch_s: float = Field(default=60.0, gt=0)  # last_seen_at is written at most this often

    # Demo / first admin
    admin_email: str = "admin@demo.test"
    admin_password: SecretStr | None = None
    run_worker: bool = True  # run the scheduler (offer timeouts) inside the server process

    # Presence across nodes (ADR 0005) and the periodic job (one node at a time)
    presence_heartbeat_s: float = Field(default=5.0, gt=0)  # each node refreshes its live sockets this often
    presence_ttl_s: float = Field(default=20.0, gt=0)  # a heartbeat not refreshed for this long is gone
    scheduler_interval_s: float = Field(default=1.0, gt=0)
    # A visitor whose sockets are all gone this long (beyond the heartbeat's expiry) leaves the queue,
    # and an active chat of theirs is closed.
    visitor_abandon_s: float = Field(default=120.0, ge=0)
    # A queued chat that operators are online for but nobody accepted for this long is "no_answer".
    unanswered_after_s: float = Field(default=120.0, ge=0)
    # Audit rows older than this many days are removed, oldest first, with a checkpoint (0: kept forever).
    # Six years: the audit log is the proof of what was done with personal data (limitation periods).
    audit_retention_days: int = Field(default=6 * 365, ge=0, le=36500)

    # Retention of personal data per category (retention/, ADR 0030): the defaults in days, each
    # overridable per workspace and per site in Settings -> Retention; 0 means "keep forever".
    # Conversations count from when they closed; consent records from the subject's last change
    # for that workspace (they are the proof of consent); the sweep deletes in batches of
    # ``retention_batch`` rows per transaction, on one node at a time, every ``retention_every_s``.
    retention_chats_days: int = Field(default=365, ge=0, le=36500)
    retention_offline_days: int = Field(default=365, ge=0, le=36500)
    retention_activity_days: int = Field(default=90, ge=0, le=36500)
    retention_prospects_days: int = Field(default=730, ge=0, le=36500)
    retention_files_days: int = Field(default=365, ge=0, le=36500)  # no file store yet: nothing to sweep
    retention_consent_days: int = Field(default=6 * 365, ge=0, le=36500)
    retention_batch: int = Field(default=500, ge=1, le=10000)
    retention_every_s: float = Field(default=3600.0, gt=0)

    # Mail and durable jobs (core/mail.py, core/jobs.py, worker/jobs.py; ADR 0013). With no SMTP
    # host, mail is not sent: each message is written to DATA_DIR/mail/*.eml (the demo's outbox).
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_user: str = ""
    smtp_password: SecretStr | None = None
    smtp_ca_file: Path | None = None  # a CA bundle to trust for the SMTP server (default: the system's)
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    mail_from: str = "Confide <no-reply@confide.invalid>"
    job_max_attempts: int = Field(default=8, ge=1)  # then the job is marked failed
    job_backoff_s: float = Field(default=30.0, ge=0)  # first retry after this, doubling each time
    job_backoff_max_s: float = Field(default=3600.0, ge=0)
    job_lease_s: float = Field(default=300.0, gt=0)  # a job a crashed node held is run again after this
    job_sweep_s: float = Field(default=30.0, gt=0)  # the runner looks for due jobs this often (plus wake-ups)
    # Invitations and account review (users/invites.py, users/review.py)
    invite_ttl_h: float = Field(default=72.0, gt=0)
    # Data-subject requests (privacy_requests/, ADR 0029): requests made per client address per hour
    # (the widget and the public page), the e-mailed code's life and attempts, reminder lead time.
    privacy_requests_per_address_per_hour: int = Field(default=5, ge=0)
    privacy_request_code_ttl_min: int = Field(default=30, ge=1, le=1440)
    privacy_request_code_attempts: int = Field(default=5, ge=1, le=20)
    privacy_request_codes_max: int = Field(default=5, ge=1, le=50)  # codes sent per request
    privacy_request_remind_days: int = Field(default=7, ge=1, le=30)  # a reminder this many days before due
    # Where reminders go when a request has no assignee (empty: every holder of subjects.export).
    privacy_team_email: str = ""

    # Data-subject rights (subjects/, ADR 0026). The controller every export names (Art. 15(1));
    # empty: the workspace's name, and the address of ``mail_from``.
    controller_name: str = ""
    controller_contact: str = ""
    # An e-mailed export link: how long it lives (single use), and the wrong codes it survives.
    export_link_ttl_h: float = Field(default=168.0, gt=0, le=24 * 31)
    export_link_max_codes: int = Field(default=5, ge=1, le=20)
    # The erasure journal (erasure/journal.py, ADR 0033): one line per erasure, appended after its
    # commit and replayed after a database restore. Empty: DATA_DIR/erasure-journal.jsonl. Keep it
    # on storage that a database restore does NOT roll back, shared by every node.
    erasure_journal: Path | None = None

    # Reverse proxies, TLS and login limits (docs/deployment.md, ADR 0016)
    # Peers whose forwarding header is believed (CIDRs, comma-separated; empty: none, the socket's
    # peer is the client). Only ``proxy_header`` is read, right-most untrusted hop first.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    proxy_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    # Built-in TLS (``confide serve --tls-cert --tls-key``): both or neither; implies secure cookies.
    tls_cert: Path | None = None
    tls_key: Path | None = Field(default=None, validate_default=True)
    # How often an open console socket re-checks its operator's login limits (window, address range).
    login_limits_check_s: float = Field(default=20.0, gt=0, le=60)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or CIDR range: {entry[:60]!r}") from None
        return value

    @field_validator("tls_key")
    @classmethod
    def _tls_pair(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if (info.data.get("tls_cert") is None) != (value is None):
            raise ValueError("set both CONFIDE_TLS_CERT and CONFIDE_TLS_KEY, or neither")
        return value

    @model_validator(mode="after")
    def _tls(self) -> Settings:
        if self.tls_cert is not None:
            self.cookie_secure = True  # served over TLS: the session cookie never travels in clear
        return self

    @cached_property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in self.trusted_proxies)

    @property
    def https(self) -> bool:
        """Whether browsers reach us over https: built-in TLS, or a TLS proxy in front (said by
        ``cookie_secure`` or an https ``public_url``). Turns HSTS on."""
        return self.tls_cert is not None or self.cookie_secure or self.public_url.lower().startswith("https://")

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+asyncpg://" + url.split("://", 1)[1]
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'confide.db').resolve()}"

    @property
    def erasure_journal_path(self) -> Path:
        return self.erasure_journal if self.erasure_journal is not None else self.data_dir / "erasure-journal.jsonl"

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
