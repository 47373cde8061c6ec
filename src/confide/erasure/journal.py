"""The erasure journal: one line per erasure, kept OUTSIDE the database (ADR 0033).

A database backup taken before an erasure holds the person's wrapped data key next to their
ciphertexts: restoring it brings them back. The journal is what survives such a restore: after
every committed erasure (``erasure.service.erase``, so single, bulk batches and replays alike)
one JSON line is appended to ``Settings.erasure_journal_path`` (default
``DATA_DIR/erasure-journal.jsonl``, ``CONFIDE_ERASURE_JOURNAL``), and ``erasure.replay`` erases
again, after a restore, everyone the journal names that the database brought back.

A line holds ids, codes and keyed digests only, never a name, an e-mail or an address:

- ``n``: its line number (1, 2, ...), ``at``: when it was written;
- ``certificate``: the certificate as issued (``service.certificate_view`` less its constants);
- ``workspace_id``, ``visitor_ids`` (random pseudonymous ids), ``keys`` (the subject ids whose
  data keys were destroyed), ``tombstones`` (``[digest, kind]``: the keyed digests the erasure
  kept, ``erasure.tombstones``);
- ``prev`` and ``mac``: ``crypto.chain_hash`` under a key derived from the master key
  (``crypto.derive_journal_key``) over the previous line's ``mac`` and this line's canonical JSON
  (sorted keys, no ``mac``). Changing, inserting, removing or reordering a line breaks the chain at
  that line; so does a line written under another master key. Cutting lines off the END cannot
  be seen from the file alone (ADR 0033: the database's certificates tell).

**Appending** (``append_sync``): ``O_APPEND`` and an exclusive ``flock`` for the whole
read-the-last-line, write, ``fsync`` step, so two erasures at once in one process, or in two
processes (server and CLI, or nodes sharing the file), never interleave or fork the chain; the
line is one ``write``. A final line without its newline (a crash during a write: that erasure's
append failed and was logged) is cut off before the next line is written.

**After the commit, not before**: the journal is a file, not a table, so it cannot join the
erasure's transaction. A line written first would name an erasure that may still roll back (a
legal hold, a conflict), and a replay would then erase someone nobody erased. So the line is
appended once the erasure has committed (``uow.after_commit``), with ``fsync``; if that fails the
erasure stands (it is done, and reported done), and ``erasure_journal_append_failed`` is logged
at error level with the certificate id; ``confide erasure replay --dry-run`` lists every
certificate of the database the journal lacks.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from confide.core import clock, crypto

log = structlog.get_logger(__name__)

VERSION = 1
_FIELDS = ("v", "n", "at", "certificate", "workspace_id", "visitor_ids", "keys", "tombstones", "prev", "mac")
_CHUNK = 64 * 1024


class JournalError(Exception):
    """The journal cannot be read or extended (a sentence naming the line, never personal data)."""


@dataclass(frozen=True)
class Entry:
    n: int
    at: str
    certificate: dict[str, Any]
    workspace_id: str
    visitor_ids: tuple[str, ...]
    keys: tuple[str, ...]
    tombstones: tuple[tuple[str, str], ...]

    @property
    def certificate_id(self) -> str:
        return str(self.certificate["id"])


@dataclass
class Reading:
    """What ``read`` found: the entries it could parse, and the first problem (``None``: the chain
    holds from the first line to the last)."""

    entries: list[Entry] = field(default_factory=list)
    problem: str | None = None
    line: int | None = None  # the line number of the problem
    torn: bool = False  # the last line was cut short by a crash (left out; the next append removes it)

    @property
    def ok(self) -> bool:
        return self.problem is None


def _canonical(body: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in body.items() if k != "mac"}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True)


def _line(key: bytes, n: int, prev: str, record: dict[str, Any]) -> bytes:
    body = {
        "v": VERSION,
        "n": n,
        "at": clock.iso(clock.now()),
        "certificate": record["certificate"],
        "workspace_id": record["workspace_id"],
        "visitor_ids": sorted(record["visitor_ids"]),
        "keys": sorted(record["keys"]),
        "tombstones": sorted([list(t) for t in record["tombstones"]]),
        "prev": prev,
    }
    body["mac"] = crypto.chain_hash(key, prev, _canonical(body))
    return (json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")


def record_of(certificate: dict[str, Any], workspace_id: str, visitor_ids: Iterable[str], keys: Iterable[str],
              tombstones: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The content of one line (``append_sync`` adds the number, the time and the chain)."""
    return {"certificate": certificate, "workspace_id": workspace_id, "visitor_ids": list(visitor_ids),
            "keys": list(keys), "tombstones": [list(t) for t in tombstones]}


def _tail(fd: int) -> tuple[bytes, int]:
    """The file's last complete line (without its newline; ``b""`` for an empty file) and where the
    complete lines end (a torn last line starts there)."""
    size = os.fstat(fd).st_size
    pos, buf = size, b""
    while pos > 0:
        step = min(_CHUNK, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        cut = len(buf) - 1 if buf.endswith(b"\n") else buf.rfind(b"\n")
        if cut >= 0 and b"\n" in buf[:cut]:
            break  # the whole of the last complete line is in ``buf``
    if not buf:
        return b"", 0
    if buf.endswith(b"\n"):
        complete_end = size
        text = buf[:-1]
    else:  # a torn tail: everything after the last newline
        cut = buf.rfind(b"\n")
        complete_end = size - len(buf) + cut + 1 if cut >= 0 else size - len(buf)
        text = buf[:cut] if cut >= 0 else b""
    last = text.rsplit(b"\n", 1)[-1] if text else b""
    return last, complete_end


def _head(last: bytes) -> tuple[int, str]:
    """(line number, mac) of the journal's last line."""
    if not last:
        return 0, ""
    try:
        body = json.loads(last)
        return int(body["n"]), str(body["mac"])
    except (ValueError, KeyError, TypeError):
        raise JournalError("the journal's last line is not readable: run `confide erasure replay --dry-run`") from None


def append_sync(path: Path, key: bytes, record: dict[str, Any]) -> int:
    """Append one line (blocking: run it in a thread); returns its line number. Raises
    ``OSError`` or ``JournalError``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the descriptor closes
        was_empty = os.fstat(fd).st_size == 0
        last, complete_end = _tail(fd)
        if complete_end != os.fstat(fd).st_size:
            log.error("erasure_journal_torn_tail_cut", at_byte=complete_end)
            os.ftruncate(fd, complete_end)
        n, prev = _head(last)
        data = _line(key, n + 1, prev, record)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    if was_empty:  # the file's own name must survive a crash too
        with contextlib.suppress(OSError):
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    return n + 1


def last_certificate_id(path: Path) -> str | None:
    """The certificate id of the journal's last line, reading only the file's tail (the cheap
    check at start-up); ``None`` when there is no journal or no line. Raises ``JournalError``
    when that line is not readable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        last, _ = _tail(fd)
    finally:
        os.close(fd)
    if not last:
        return None
    try:
        return str(json.loads(last)["certificate"]["id"])
    except (ValueError, KeyError, TypeError):
        raise JournalError("the journal's last line is not readable: run `confide erasure replay --dry-run`") from None


def _entry(body: Any) -> Entry:
    if not isinstance(body, dict) or set(body) != set(_FIELDS) or body["v"] != VERSION:
        raise ValueError("not a journal line")
    cert = body["certificate"]
    if not isinstance(cert, dict) or not isinstance(cert.get("id"), str):
        raise ValueError("no certificate")
    if not all(isinstance(v, str) for v in (*body["visitor_ids"], *body["keys"], body["workspace_id"], body["at"])):
        raise ValueError("ids are strings")
    stones = tuple((str(d), str(k)) for d, k in body["tombstones"])
    return Entry(n=int(body["n"]), at=body["at"], certificate=cert, workspace_id=body["workspace_id"],
                 visitor_ids=tuple(body["visitor_ids"]), keys=tuple(body["keys"]), tombstones=stones)


def read(path: Path, key: bytes) -> Reading:
    """Every line, with the chain verified (blocking: run it in a thread). The first problem is
    kept with its line number; the lines that still parse after it are kept too (``--force``)."""
    out = Reading()
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return out
    prev = ""
    with handle:
        for number, raw in enumerate(handle, 1):
            problem: str | None = None
            if not raw.endswith(b"\n"):  # only the last line can lack it: a write a crash cut short
                out.torn = True
                break
            try:
                body = json.loads(raw)
                entry = _entry(body)
            except (ValueError, KeyError, TypeError, AttributeError):
                out.problem = out.problem or f"line {number} of the erasure journal is not a journal line"
                out.line = out.line or number
                prev = ""
                continue
            if problem is None and entry.n != number:
                problem = f"says it is line {entry.n}"
            elif problem is None and body["prev"] != prev:
                problem = "does not follow the line before it (a line was removed, added or moved)"
            elif problem is None and not crypto.constant_time_equal(
                    crypto.chain_hash(key, body["prev"], _canonical(body)), str(body["mac"])):
                problem = "was changed after it was written (its chain hash does not match)"
            if problem is not None and out.problem is None:
                out.problem, out.line = f"line {number} of the erasure journal {problem}", number
            prev = str(body["mac"])
            out.entries.append(entry)
    return out
