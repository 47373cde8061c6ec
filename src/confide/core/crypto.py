"""All cryptography lives here: ids, tokens, password hashing, signing, envelope encryption, blind indexes.

Envelope encryption: each data subject (visitor) has a random 256-bit data key; personal data is
encrypted with it (AES-256-GCM, the column name and row owner as associated data). The data key
is stored only wrapped (AES-GCM) under the master key, which lives outside the database.
Destroying a subject's wrapped key makes every copy of its ciphertext unreadable, backups included.

Blind indexes: keyed HMAC-SHA256 of a normalised value, with a key derived from the master key
per workspace, so that equality lookups (e-mail, words) never need plaintext columns and values
cannot be correlated across workspaces.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from confide.core import clock
from confide.core.errors import RateLimited

T = TypeVar("T")
_VERSION = b"\x01"
_NONCE = 12


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_id() -> str:
    """An opaque, random, URL-safe identifier of 128 bits."""
    return b64e(secrets.token_bytes(16))


def new_ordered_id() -> str:
    """An identifier that sorts by creation time: 10 characters of milliseconds (base 32, in ASCII
    order) then 22 URL-safe base64 characters of randomness (132 bits, so it is as hard to guess as
    ``new_id``), 32 characters in all. Rows keyed by it are appended at the end of their index
    instead of scattered over it (for a table written many times a second, such as messages: a
    random key dirties a different index page per row, so each commit writes, syncs and checkpoints
    far more pages). It tells no more than the row's own creation time."""
    return new_ordered_ids(1)[0]


_ORDERED_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUV"


def new_ordered_ids(count: int) -> list[str]:
    """``count`` ordered identifiers (see ``new_ordered_id``) sharing one time prefix."""
    ms = int(clock.now().timestamp() * 1000)
    prefix = "".join(_ORDERED_DIGITS[(ms >> shift) & 31] for shift in range(45, -1, -5))
    return [prefix + b64e(secrets.token_bytes(17))[:22] for _ in range(count)]


def random_token(nbytes: int = 32) -> str:
    return b64e(secrets.token_bytes(nbytes))


def sha256_hex(text: str) -> str:
    """The SHA-256 of a text (UTF-8), in hex: a notice's fingerprint, proof of the exact words shown."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def token_digest(token: str) -> str:
    """What is stored for a bearer secret (session token): its SHA-256, never the secret."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- passwords
class Passwords:
    """argon2id hashing. The ``*_async`` methods run in a small thread pool of its own, never on
    the event loop (a check costs ~0.3 s at production cost; argon2-cffi releases the GIL), and
    callers run them outside any transaction. At most ``max_pending`` checks wait at a time."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536, *, workers: int = 1, max_pending: int = 64) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        self._workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0
        self._max_pending = max_pending

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether a hash was made with other parameters than the current ones (rehash at log-in)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def matches_any(self, password_hashes: list[str], password: str) -> bool:
        """Whether the password is any of these (a password history), checking every one."""
        found = False
        for password_hash in password_hashes:
            found = self.verify(password_hash, password) or found
        return found

    async def matches_any_async(self, password_hashes: list[str], password: str) -> bool:
        return await self._off_loop(self.matches_any, password_hashes, password) if password_hashes else False

    def dummy_verify(self) -> None:
        """Spend the same time as a real check, so unknown accounts are not told apart by timing."""
        self.verify(self._dummy, "not the password")

    async def hash_async(self, password: str) -> str:
        return await self._off_loop(self.hash, password)

    async def verify_async(self, password_hash: str | None, password: str) -> bool:
        """``None`` (no such account, locked, disabled): a dummy check of the same cost, then False."""
        if password_hash is None:
            await self._off_loop(self.dummy_verify)
            return False
        return await self._off_loop(self.verify, password_hash, password)

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pending >= self._max_pending:
            # Refuse rather than queue without bound (a flood of log-ins must not eat memory).
            raise RateLimited("too many log-in attempts at once; try again in a moment")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="confide-argon2")
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._pending -= 1

    @property
    def pending(self) -> int:
        """Checks running or waiting in the hashing threads now."""
        return self._pending

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    @property
    def _dummy(self) -> str:
        cached: str | None = getattr(self, "_dummy_hash", None)
        if cached is None:
            cached = self._hasher.hash(random_token())
            self._dummy_hash = cached
        return cached


# ---------------------------------------------------------------- master key
def load_or_create_master_key(configured: str | None, data_dir: Path) -> bytes:
    """The master key: from configuration, or generated once into ``data_dir/master.key`` (0600)."""
    if configured:
        key = b64d(configured.strip())
        if len(key) != 32:
            raise ValueError("CONFIDE_MASTER_KEY must be 32 bytes, base64url encoded")
        return key
    path = data_dir / "master.key"
    if path.exists():
        key = b64d(path.read_text().strip())
        if len(key) != 32:
            raise ValueError(f"{path} does not hold a 32-byte key")
        return key
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as handle:
        handle.write(b64e(key) + "\n")
    return key


def _derive(master: bytes, info: str, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info.encode()).derive(master)


def generate_key() -> str:
    """A new master key, printable (for ``CONFIDE_MASTER_KEY``)."""
    return b64e(secrets.token_bytes(32))


# ---------------------------------------------------------------- envelope encryption
class DataKey:
    """A subject's unwrapped data key. Encrypts text with AES-256-GCM."""

    __slots__ = ("_aead",)

    def __init__(self, raw: bytes) -> None:
        self._aead = AESGCM(raw)

    def encrypt(self, text: str, aad: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, text.encode("utf-8"), aad.encode("utf-8"))

    def decrypt(self, blob: bytes, aad: str) -> str:
        if not blob or blob[:1] != _VERSION:
            raise ValueError("unknown ciphertext version")
        nonce, body = blob[1 : 1 + _NONCE], blob[1 + _NONCE :]
        return self._aead.decrypt(nonce, body, aad.encode("utf-8")).decode("utf-8")

    def encrypt_json(self, value: Any, aad: str) -> bytes:
        return self.encrypt(json.dumps(value, ensure_ascii=False, separators=(",", ":")), aad)

    def decrypt_json(self, blob: bytes, aad: str) -> Any:
        return json.loads(self.decrypt(blob, aad))


class KeyWrapper:
    """Wraps and unwraps subject data keys under the master key."""

    def __init__(self, master: bytes) -> None:
        self._aead = AESGCM(_derive(master, "confide/key-wrap/v1"))

    def new_wrapped_key(self, subject_id: str) -> tuple[bytes, DataKey]:
        raw = secrets.token_bytes(32)
        nonce = secrets.token_bytes(_NONCE)
        wrapped = _VERSION + nonce + self._aead.encrypt(nonce, raw, subject_id.encode())
        return wrapped, DataKey(raw)

    def unwrap(self, wrapped: bytes, subject_id: str) -> DataKey:
        if wrapped[:1] != _VERSION:
            raise ValueError("unknown wrapped key version")
        nonce, body = wrapped[1 : 1 + _NONCE], wrapped[1 + _NONCE :]
        return DataKey(self._aead.decrypt(nonce, body, subject_id.encode()))


# ---------------------------------------------------------------- blind indexes
def normalise_email(email: str) -> str:
    return unicodedata.normalize("NFKC", email).strip().casefold()


# A run of alphanumeric characters (``str.isalnum``): ``\w`` less the underscore.
_WORD = re.compile(r"[^\W_]+")


def words(text: str, *, min_len: int = 2, max_words: int = 200) -> list[str]:
    """Normalised distinct words of a text, for the keyed word index."""
    out: list[str] = []
    seen: set[str] = set()
    for word in _WORD.findall(unicodedata.normalize("NFKC", text).casefold()):
        if len(word) >= min_len and word not in seen:
            seen.add(word)
            out.append(word[:64])
            if len(out) >= max_words:
                break
    return out


class BlindIndex:
    """Keyed HMAC-SHA256 of normalised values, with a key per workspace.

    Hot path (every word of every message): HMAC is computed from its definition (RFC 2104),
    ``H((K ^ opad) || H((K ^ ipad) || m))``, with the two keyed SHA-256 states built once per
    workspace and copied per value. Same output as ``hmac.new(K, m, sha256)``, at a third of
    its cost (keying an HMAC hashes two blocks and builds an OpenSSL context every time).

    The terms of message words (kind ``msg``) are also remembered, per workspace, up to
    ``MESSAGE_WORDS`` words in all (then forgotten at once): people write mostly the same few
    thousand words, so most words of a message need no HMAC at all. The cache holds words, not
    who wrote them (no subject, conversation or message), lives only in this process's memory,
    which holds the master key anyway, and is never written anywhere.
    """

    _BLOCK = 64  # SHA-256 block size; workspace keys are 32 bytes, so never hashed down first
    MESSAGE_WORDS = 32_768  # a few MB at most

    def __init__(self, master: bytes) -> None:
        self._root = _derive(master, "confide/blind-index/v1")
        self._keyed: dict[str, tuple[Any, Any]] = {}  # workspace id -> (inner, outer) SHA-256 states
        self._message_terms: dict[str, dict[str, str]] = {}  # workspace id -> word -> term
        self._remembered = 0

    def _states(self, workspace_id: str) -> tuple[Any, Any]:
        states = self._keyed.get(workspace_id)
        if states is None:
            key = hmac.new(self._root, workspace_id.encode(), hashlib.sha256).digest().ljust(self._BLOCK, b"\0")
            states = self._keyed[workspace_id] = (
                hashlib.sha256(bytes(b ^ 0x36 for b in key)),
                hashlib.sha256(bytes(b ^ 0x5C for b in key)),
            )
        return states

    def term(self, workspace_id: str, kind: str, value: str) -> str:
        return self._terms(workspace_id, f"{kind}\x00".encode(), [value])[0]

    def email(self, workspace_id: str, email: str) -> str:
        return self.term(workspace_id, "email", normalise_email(email))

    def text_terms(self, workspace_id: str, kind: str, text: str) -> list[str]:
        values = words(text)
        if kind != "msg":
            return self._terms(workspace_id, f"{kind}\x00".encode(), values)
        cache = self._message_terms.get(workspace_id)
        if cache is None:
            cache = self._message_terms[workspace_id] = {}
        found = [cache.get(w) for w in values]
        if None not in found:
            return cast(list[str], found)
        missing = [w for w, t in zip(values, found, strict=True) if t is None]
        computed = self._terms(workspace_id, b"msg\x00", missing)
        if self._remembered + len(missing) > self.MESSAGE_WORDS:
            for other in self._message_terms.values():
                other.clear()
            self._remembered = 0
        cache.update(zip(missing, computed, strict=True))
        self._remembered += len(missing)
        fresh = iter(computed)
        return [t if t is not None else next(fresh) for t in found]

    def _terms(self, workspace_id: str, prefix: bytes, values: list[str]) -> list[str]:
        inner, outer = self._states(workspace_id)
        out = []
        for value in values:
            h = inner.copy()
            h.update(prefix + value.encode())
            o = outer.copy()
            o.update(h.digest())
            out.append(o.hexdigest()[:32])
        return out


# ---------------------------------------------------------------- signed tokens
class Signer:
    """Compact HMAC-SHA256 signed JSON tokens with an expiry (``exp``, epoch seconds)."""

    def __init__(self, secret: bytes, purpose: str) -> None:
        self._key = _derive(secret, f"confide/signer/{purpose}")

    def sign(self, claims: dict[str, Any]) -> str:
        body = b64e(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        mac = b64e(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        return f"{body}.{mac}"

    def verify(self, token: str, now_epoch: float) -> dict[str, Any] | None:
        """The claims, or None when the token is malformed, forged or expired."""
        if not isinstance(token, str) or len(token) > 2048 or token.count(".") != 1:
            return None
        body, mac = token.split(".")
        expected = b64e(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected.encode(), mac.encode()):
            return None
        try:
            claims = json.loads(b64d(body))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int | float):
            return None
        if claims["exp"] < now_epoch:
            return None
        return claims


class Sealer:
    """Short-lived encrypted tokens: a JSON value sealed with AES-256-GCM under a key of one purpose,
    bound to a context (the associated data, e.g. an operator id) and expiring. For what a URL must
    carry without showing it: any node with the same secret opens it, none keeps state for it."""

    def __init__(self, secret: bytes, purpose: str) -> None:
        self._key = DataKey(_derive(secret, f"confide/sealer/{purpose}"))

    def seal(self, value: Any, *, context: str, ttl_s: float, now_epoch: float) -> str:
        return b64e(self._key.encrypt_json({"v": value, "exp": now_epoch + ttl_s}, context))

    def open(self, token: object, *, context: str, now_epoch: float, max_len: int = 4096) -> Any | None:
        """The value, or None when the token is malformed, forged, for another context or expired."""
        if not isinstance(token, str) or not token or len(token) > max_len:
            return None
        try:
            sealed = self._key.decrypt_json(b64d(token), context)
        except (ValueError, InvalidTag, UnicodeDecodeError):
            return None
        if not isinstance(sealed, dict) or not isinstance(sealed.get("exp"), int | float):
            return None
        return sealed.get("v") if sealed["exp"] >= now_epoch else None


def derive_secret(master: bytes, configured: str | None) -> bytes:
    if configured:
        return configured.encode("utf-8")
    return _derive(master, "confide/secret/v1")


# ---------------------------------------------------------------- the audit log's chain
def derive_audit_key(master: bytes) -> bytes:
    """The key of the audit log's hash chain: kept outside the database (derived from the master
    key), so that someone who can write to the database cannot recompute a chain they changed."""
    return _derive(master, "confide/audit-chain/v1")


def chain_hash(key: bytes, prev_hash: str, record: str) -> str:
    """One link of the audit chain: HMAC-SHA256 over the previous link and this row's canonical form."""
    return hmac.new(key, prev_hash.encode("ascii") + b"\n" + record.encode("utf-8"), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- the erasure journal's chain
def derive_journal_key(master: bytes) -> bytes:
    """The key of the erasure journal's chain (``erasure.journal``): derived from the master key,
    so that someone who can write the journal file but does not hold the master key cannot forge
    or quietly change a line. Its own derivation label: it is not the audit log's key."""
    return _derive(master, "confide/erasure-journal/v1")


# ---------------------------------------------------------------- pseudonyms for logs
def random_key() -> bytes:
    return secrets.token_bytes(32)


def keyed_pseudonym(key: bytes, value: str) -> str:
    """A short keyed digest of ``value`` (e.g. a client address in a log line): stable for one key."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


# ---------------------------------------------------------------- two-factor (TOTP secrets, recovery codes, tickets)
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper without mistakes


def new_totp_secret() -> str:
    """A TOTP shared secret: 160 random bits (RFC 4226's recommended length), base32 without padding."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


def new_challenge() -> bytes:
    """A WebAuthn challenge: 256 random bits (the specification asks for at least 128)."""
    return secrets.token_bytes(32)


def new_recovery_code() -> str:
    """A recovery code like ``k7tq2-mx9ra``: 10 characters of a 31-letter alphabet (~49 bits)."""
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def normalise_recovery_code(code: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", code).casefold() if ch.isalnum())[:32]


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class FactorBox:
    """Two-factor secrets at rest: TOTP secrets encrypted (AES-256-GCM under a key derived from the
    master key, the column and the operator as associated data), recovery codes stored as keyed
    digests (HMAC-SHA256: with ~49 bits a plain hash could be searched offline from a database dump;
    the key lives outside the database)."""

    def __init__(self, master: bytes) -> None:
        self._key = DataKey(_derive(master, "confide/two-factor/secrets/v1"))
        self._mac = _derive(master, "confide/two-factor/codes/v1")

    def seal_secret(self, secret: str, *, operator_id: str) -> bytes:
        return self._key.encrypt(secret, f"totp_factors.secret_enc:{operator_id}")

    def open_secret(self, blob: bytes, *, operator_id: str) -> str:
        return self._key.decrypt(blob, f"totp_factors.secret_enc:{operator_id}")

    def code_digest(self, code: str, *, operator_id: str) -> str:
        message = f"{operator_id}\x00{normalise_recovery_code(code)}".encode()
        return hmac.new(self._mac, message, hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- OAuth 2.0 PKCE (RFC 7636)
def pkce_s256(verifier: str) -> str:
    """The ``S256`` code challenge of a PKCE code verifier: base64url(SHA-256(verifier)), no padding."""
    return b64e(hashlib.sha256(verifier.encode("ascii")).digest())


# ---------------------------------------------------------------- verified visitor identity (ADR 0022)
IDENTITY_SECRET_PREFIX = "cfid_"  # noqa: S105 - a label, not a secret


def new_identity_secret() -> str:
    """A site's identity-verification secret: 256 random bits, base64url, with a recognisable prefix
    (secret scanners and people can tell what it is)."""
    return IDENTITY_SECRET_PREFIX + secrets.token_urlsafe(32)


def identity_message(user_id: str, email: str) -> bytes:
    """What a site signs: ``user_id``, a line feed, then the e-mail address as given ("" when none),
    in UTF-8. Neither part may hold a line feed (the caller refuses control characters), so the
    message names exactly one (id, e-mail) pair: neither can be swapped without a new signature."""
    return f"{user_id}\n{email}".encode()


def identity_signature(secret: str, user_id: str, email: str) -> str:
    """HMAC-SHA256 of ``identity_message`` under the secret's UTF-8 bytes, lowercase hex."""
    return hmac.new(secret.encode("utf-8"), identity_message(user_id, email), hashlib.sha256).hexdigest()


def identity_signature_valid(secret: str, user_id: str, email: str, given: str) -> bool:
    """Constant-time check of a site's signature (case-insensitive hex)."""
    expected = identity_signature(secret, user_id, email)
    return hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("utf-8"))
