"""LDAP / Active Directory as a first factor, with ldap3.

The only way a password is checked: search for the user with the service account (the filter
template with the typed login escaped per RFC 4515), require exactly one entry, then bind as that
entry's DN with the typed password. Never a ``user@domain`` bind (OpenLDAP cannot take it, and it
would skip the search that tells a disabled or unknown user apart). An empty or whitespace-only
password is refused before any connection: to an LDAP server it is an anonymous bind that
"succeeds".

ldap3 is a blocking library: every call here runs in a worker thread (``asyncio.to_thread``),
under ldap3's own connect and receive timeouts and an overall ``asyncio`` timeout, never on the
event loop, and never while a database transaction is open (callers' business).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import ldap3
from ldap3.core import exceptions as ldap_errors
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

T = TypeVar("T")
TlsMode = Literal["ldaps", "starttls", "none"]

# Active Directory: userAccountControl bit 2 (ACCOUNTDISABLE).
AD_ACCOUNT_DISABLED = 0x2
AD_UAC = "userAccountControl"
# OpenLDAP ppolicy: an account locked by the password policy.
LOCKED_TIME = "pwdAccountLockedTime"


@dataclass(frozen=True)
class LdapConfig:
    urls: tuple[str, ...]
    tls: TlsMode
    ca_pem: str | None
    bind_dn: str
    bind_password: str = field(repr=False)
    base_dn: str
    user_filter: str  # with the placeholder ``{login}``
    attr_email: str = "mail"
    attr_name: str = "cn"
    attr_groups: str = "memberOf"
    timeout_s: float = 5.0


@dataclass(frozen=True)
class DirectoryEntry:
    dn: str
    email: str | None
    name: str | None
    groups: tuple[str, ...]  # group DNs, normalised (``normalise_dn``)
    disabled: bool


class LdapRefused(Exception):
    """The directory said no (or could not be asked). ``code`` is for the audit log and the logs:
    a stable word, never the login name or anything the directory returned."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def build_filter(template: str, login: str) -> str:
    """The search filter: every ``{login}`` replaced by the login escaped per RFC 4515 (``*``, ``(``,
    ``)``, ``\\`` and NUL become ``\\2a`` …), so a login can never change the filter's shape."""
    if "{login}" not in template:
        raise ValueError("the user filter must contain {login}")
    return template.replace("{login}", escape_filter_chars(login))


def normalise_dn(dn: str) -> str:
    """A DN in one spelling for comparisons: attribute types and values lower-cased, no spaces
    around separators. Falls back to lower-casing when ldap3 cannot parse it."""
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except (ldap_errors.LDAPInvalidDnError, ValueError, IndexError):
        return " ".join(dn.lower().split())
    return ",".join(f"{attr.lower()}={value.lower()}" for attr, value, _sep in parts)


def _tls(config: LdapConfig) -> ldap3.Tls | None:
    if config.tls == "none":
        return None
    return ldap3.Tls(
        validate=ssl.CERT_REQUIRED,
        version=ssl.PROTOCOL_TLS_CLIENT,
        ca_certs_data=config.ca_pem or None,
    )


def _servers(config: LdapConfig) -> list[ldap3.Server]:
    tls = _tls(config)
    return [
        ldap3.Server(
            url,
            use_ssl=config.tls == "ldaps",
            tls=tls,
            get_info=ldap3.NONE,  # no schema: unknown attribute names (userAccountControl on OpenLDAP) are fine
            connect_timeout=max(1, int(config.timeout_s)),
        )
        for url in config.urls
    ]


def _connect_any(config: LdapConfig, user: str, password: str) -> tuple[ldap3.Connection, ldap3.Server]:
    """A connection bound as ``user`` to the first server that answers, in the configured order
    (not ldap3's ServerPool, whose availability loop sleeps 10 s after each round)."""
    refused = LdapRefused("unreachable")
    for server in _servers(config):
        try:
            return _connect(config, server, user, password), server
        except LdapRefused as exc:
            if exc.code != "unreachable":
                raise
            refused = exc
    raise refused


def _connect(config: LdapConfig, server: ldap3.Server, user: str, password: str) -> ldap3.Connection:
    """A bound connection, or ``LdapRefused`` ("bad_credentials" for a wrong password,
    "unreachable" when no server answers, "tls_failed" when TLS cannot be set up)."""
    conn = ldap3.Connection(
        server,
        user=user,
        password=password,
        authentication=ldap3.SIMPLE,
        auto_bind=ldap3.AUTO_BIND_NONE,
        read_only=True,
        raise_exceptions=True,
        receive_timeout=max(1, int(config.timeout_s)),  # ldap3 packs it as an int
    )
    try:
        conn.open()
        if config.tls == "starttls":
            conn.start_tls()
        conn.bind()
    except (ldap_errors.LDAPInvalidCredentialsResult, ldap_errors.LDAPBindError):
        _close(conn)
        raise LdapRefused("bad_credentials") from None
    except (ldap_errors.LDAPStartTLSError, ldap_errors.LDAPSSLConfigurationError, ssl.SSLError):
        _close(conn)
        raise LdapRefused("tls_failed") from None
    except ldap_errors.LDAPSocketOpenError as exc:
        _close(conn)
        # ldap3 reports a failed TLS handshake as a socket error whose text names SSL.
        raise LdapRefused("tls_failed" if "ssl" in str(exc).lower() else "unreachable") from None
    except (ldap_errors.LDAPCommunicationError, ldap_errors.LDAPSocketReceiveError, OSError):
        _close(conn)
        raise LdapRefused("unreachable") from None
    except ldap_errors.LDAPException:
        _close(conn)
        raise LdapRefused("bind_failed") from None
    return conn


def _close(conn: ldap3.Connection) -> None:
    with contextlib.suppress(ldap_errors.LDAPException, OSError):  # closing a dead connection
        conn.unbind()


def _attrs(config: LdapConfig) -> list[str]:
    return list(dict.fromkeys([config.attr_email, config.attr_name, config.attr_groups, AD_UAC, LOCKED_TIME]))


def _first(values: Any) -> str | None:
    if isinstance(values, list | tuple):
        values = values[0] if values else None
    if isinstance(values, bytes):
        values = values.decode("utf-8", "replace")
    return str(values) if values not in (None, "") else None


def _many(values: Any) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list | tuple):
        values = [values]
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


def _entry(config: LdapConfig, dn: str, attributes: dict[str, Any]) -> DirectoryEntry:
    lower = {k.lower(): v for k, v in attributes.items()}
    disabled = False
    uac = _first(lower.get(AD_UAC.lower()))
    if uac is not None:
        try:
            disabled = bool(int(uac) & AD_ACCOUNT_DISABLED)
        except ValueError:
            disabled = True  # an account control we cannot read is not an enabled account
    if _first(lower.get(LOCKED_TIME.lower())) is not None:
        disabled = True
    return DirectoryEntry(
        dn=dn,
        email=_first(lower.get(config.attr_email.lower())),
        name=_first(lower.get(config.attr_name.lower())),
        groups=tuple(normalise_dn(g) for g in _many(lower.get(config.attr_groups.lower()))),
        disabled=disabled,
    )


def _search_one(config: LdapConfig, conn: ldap3.Connection, login: str) -> DirectoryEntry:
    try:
        conn.search(
            config.base_dn,
            build_filter(config.user_filter, login),
            search_scope=ldap3.SUBTREE,
            attributes=_attrs(config),
            size_limit=2,
            time_limit=max(1, int(config.timeout_s)),
        )
    except ldap_errors.LDAPSizeLimitExceededResult:
        raise LdapRefused("ambiguous") from None
    except ldap_errors.LDAPNoSuchObjectResult:
        raise LdapRefused("not_found") from None
    except (ldap_errors.LDAPCommunicationError, ldap_errors.LDAPSocketReceiveError, OSError):
        raise LdapRefused("unreachable") from None
    except ldap_errors.LDAPException:
        raise LdapRefused("search_failed") from None
    entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
    if not entries:
        raise LdapRefused("not_found")
    if len(entries) > 1:
        raise LdapRefused("ambiguous")
    return _entry(config, str(entries[0]["dn"]), dict(entries[0].get("attributes") or {}))


def authenticate_sync(config: LdapConfig, login: str, password: str) -> DirectoryEntry:
    """Search with the service account, then bind as the one entry found. Blocking: see ``authenticate``."""
    if not password or not password.strip():
        raise LdapRefused("empty_password")
    if not login or not login.strip() or len(login) > 320:
        raise LdapRefused("not_found")
    service, server = _connect_any(config, config.bind_dn, config.bind_password)
    try:
        entry = _search_one(config, service, login)
    finally:
        _close(service)
    if entry.disabled:
        raise LdapRefused("disabled")
    # The bind goes to the server that found the entry (a replica elsewhere may lag behind).
    user = _connect(config, server, entry.dn, password)
    _close(user)
    return entry


def lookup_sync(config: LdapConfig, dn: str) -> DirectoryEntry | None:
    """The entry at ``dn`` read with the service account (the periodic re-check), None when it is
    gone. ``LdapRefused`` when the directory cannot be asked: the caller decides what that means."""
    conn, _server = _connect_any(config, config.bind_dn, config.bind_password)
    try:
        conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=_attrs(config), size_limit=1)
        response = list(conn.response or [])  # read before unbinding: unbind clears it
    except ldap_errors.LDAPNoSuchObjectResult:
        return None
    except (ldap_errors.LDAPCommunicationError, ldap_errors.LDAPSocketReceiveError, OSError):
        raise LdapRefused("unreachable") from None
    except ldap_errors.LDAPException:
        raise LdapRefused("search_failed") from None
    finally:
        _close(conn)
    entries = [e for e in response if e.get("type") == "searchResEntry"]
    if not entries:
        return None
    return _entry(config, str(entries[0]["dn"]), dict(entries[0].get("attributes") or {}))


def test_connection_sync(config: LdapConfig) -> int:
    """Bind with the service account and search the user base (size limit 1): the number of
    entries seen (0 or 1). ``LdapRefused`` says what failed."""
    conn, _server = _connect_any(config, config.bind_dn, config.bind_password)
    try:
        conn.search(config.base_dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=[], size_limit=1)
        response = list(conn.response or [])
    except ldap_errors.LDAPNoSuchObjectResult:
        raise LdapRefused("base_not_found") from None
    except ldap_errors.LDAPException:
        raise LdapRefused("search_failed") from None
    finally:
        _close(conn)
    return len([e for e in response if e.get("type") == "searchResEntry"])


async def _off_loop(config: LdapConfig, fn: Callable[..., T], *args: Any) -> T:
    # Each server may take connect + receive timeouts; the overall bound covers a pool of them.
    budget = config.timeout_s * 3 * max(1, len(config.urls)) + 1
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout=budget)
    except TimeoutError:
        raise LdapRefused("timeout") from None


async def authenticate(config: LdapConfig, login: str, password: str) -> DirectoryEntry:
    if not password or not password.strip():
        raise LdapRefused("empty_password")  # before any thread, any socket
    return await _off_loop(config, authenticate_sync, config, login, password)


async def lookup(config: LdapConfig, dn: str) -> DirectoryEntry | None:
    return await _off_loop(config, lookup_sync, config, dn)


async def test_connection(config: LdapConfig) -> int:
    return await _off_loop(config, test_connection_sync, config)


def member_of_any(entry: DirectoryEntry, group_dns: Sequence[str]) -> bool:
    wanted = {normalise_dn(g) for g in group_dns}
    return any(g in wanted for g in entry.groups)
