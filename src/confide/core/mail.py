"""Outgoing mail, always through the durable job outbox (``core/jobs.py``, kind ``mail``).

``enqueue_mail(rt, uow, ...)`` queues a message in the caller's transaction; the job runner sends
it after the commit. Sending uses the standard library's ``smtplib`` in a worker thread (never on
the event loop): plain SMTP, STARTTLS or implicit TLS (``CONFIDE_SMTP_SECURITY``), with a login when
``CONFIDE_SMTP_USER`` is set. Each message has a plain-text body and, optionally, a simple HTML one.

Without ``CONFIDE_SMTP_HOST`` (the demo, ``make run``) nothing leaves the machine: each message is
written to ``DATA_DIR/mail/<id>.eml`` (open it with any mail reader) and the log says ``mail_kept``
with a count, never an address, a subject or a body.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from confide.config import Settings
from confide.core import crypto, jobs
from confide.core.db import UnitOfWork

if TYPE_CHECKING:
    from confide.core.runtime import Runtime

log = structlog.get_logger(__name__)
KIND = "mail"


class Mail(BaseModel):
    """One message, as the job's payload holds it (encrypted at rest)."""

    model_config = ConfigDict(extra="forbid")
    to: Annotated[list[Annotated[str, Field(min_length=3, max_length=320)]], Field(min_length=1, max_length=50)]
    subject: Annotated[str, Field(min_length=1, max_length=300)]
    text: Annotated[str, Field(max_length=100_000)]
    html: Annotated[str, Field(max_length=200_000)] | None = None
    # Only these extra headers (marketing mail's one-click withdrawal, RFC 2369 / RFC 8058).
    headers: dict[Literal["List-Unsubscribe", "List-Unsubscribe-Post"], Annotated[str, Field(max_length=2000)]] = (
        Field(default_factory=dict)
    )


def enqueue_mail(
    rt: Runtime,
    uow: UnitOfWork,
    *,
    to: list[str],
    subject: str,
    text: str,
    html: str | None = None,
    workspace_id: str | None = None,
    subject_id: str | None = None,
    purpose: str | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    """Queue a message in the caller's transaction (sent only if it commits). Returns the job id.
    ``purpose``: the consent purpose the message serves (marketing mail: use
    ``consent.links.enqueue_marketing_mail``, which asks ``may`` and adds the withdrawal link)."""
    mail = Mail.model_validate({"to": to, "subject": subject, "text": text, "html": html, "headers": headers or {}})
    payload = mail.model_dump(mode="json")
    if not payload["headers"]:
        del payload["headers"]  # the payload of an ordinary message stays as it was
    return jobs.enqueue(rt, uow, KIND, payload, workspace_id=workspace_id, subject_id=subject_id, purpose=purpose)


def build(settings: Settings, mail: Mail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = ", ".join(mail.to)
    message["Subject"] = mail.subject
    message["Message-ID"] = make_msgid(domain=_domain(settings.mail_from))
    message["Auto-Submitted"] = "auto-generated"
    for name, value in mail.headers.items():
        message[name] = value
    message.set_content(mail.text)
    if mail.html is not None:
        message.add_alternative(mail.html, subtype="html")
    return message


def _domain(address: str) -> str:
    tail = address.rsplit("@", 1)[-1].strip(" >")
    return tail or "confide.invalid"


# ---------------------------------------------------------------- transports
def _tls_context(settings: Settings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(settings.smtp_ca_file) if settings.smtp_ca_file else None)


def _send_smtp(settings: Settings, message: EmailMessage) -> None:
    """Blocking: runs in a worker thread."""
    host, port, timeout = settings.smtp_host, settings.smtp_port, settings.smtp_timeout_s
    client: smtplib.SMTP
    if settings.smtp_security == "ssl":
        client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=_tls_context(settings))
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        client.ehlo()
        if settings.smtp_security == "starttls":
            client.starttls(context=_tls_context(settings))
            client.ehlo()
        if settings.smtp_user:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            client.login(settings.smtp_user, password)
        client.send_message(message)


def _keep(settings: Settings, message: EmailMessage) -> Path:
    """No SMTP server configured: the message goes to DATA_DIR/mail/<id>.eml (0600)."""
    folder = settings.data_dir / "mail"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{crypto.new_ordered_id()}.eml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(message.as_bytes())
    return path


def _code(exc: BaseException) -> jobs.JobError:
    """An SMTP failure as a code (the server's text may quote the address: never stored or logged)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return jobs.JobError("smtp_recipient_refused", retry=False)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return jobs.JobError("smtp_auth_failed")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return jobs.JobError("smtp_disconnected")
    if isinstance(exc, smtplib.SMTPResponseException):
        permanent = 500 <= exc.smtp_code < 600
        return jobs.JobError(f"smtp_{exc.smtp_code}", retry=not permanent)
    if isinstance(exc, ssl.SSLError):
        return jobs.JobError("smtp_tls_failed")
    if isinstance(exc, TimeoutError):
        return jobs.JobError("smtp_timeout")
    if isinstance(exc, OSError):
        return jobs.JobError("smtp_unreachable")
    if isinstance(exc, smtplib.SMTPException):
        return jobs.JobError("smtp_error")
    return jobs.JobError(type(exc).__name__)


async def send(settings: Settings, mail: Mail) -> None:
    """Send now (the job handler calls this): off the event loop; raises ``JobError``."""
    message = build(settings, mail)
    if not settings.smtp_host:
        await asyncio.to_thread(_keep, settings, message)
        log.info("mail_kept", count=1, folder="mail")
        return
    try:
        await asyncio.to_thread(_send_smtp, settings, message)
    except Exception as exc:
        raise _code(exc) from None
    log.info("mail_sent", count=1)


@jobs.handler(KIND)
async def _run(rt: Runtime, payload: dict[str, Any]) -> None:
    try:
        mail = Mail.model_validate(payload)
    except ValidationError:
        raise jobs.JobError("mail_payload_invalid", retry=False) from None
    await send(rt.settings, mail)
