"""What redaction looks for and how it masks, with no database and no I/O (ADR 0021).

- Payment card numbers: 13 to 19 digits, single spaces or dashes allowed between them, that pass
  the Luhn check. A run of digit groups is tried window by window (the longest valid window first),
  so a card number typed after other numbers is still found; a single unbroken run of digits is
  one candidate only (a 25-digit tracking number holds no card). Masked to bullets but the last
  four digits, keeping the separators: ``•••• •••• •••• 4242``.
- IBANs (ISO 13616): a known country code, its registered length, and the mod-97 check; spaces
  allowed, any case. Masked to ``[IBAN ••••3000]`` (the last four characters).
- Custom patterns (name + regex) run with the ``regex`` package's ``timeout=``: one budget per text
  for all the site's patterns together (``TEXT_BUDGET_S``). A text whose patterns do not finish in
  time is withheld as a whole (``WITHHELD``): conservative, and the writer goes on.

``Redactor`` is one site's compiled policy; ``redact(text)`` returns ``None`` when nothing
matched (the common case costs a couple of C-level regex scans).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import regex

BULLET = "•"
WITHHELD = "[message withheld: it could not be checked for sensitive data]"
TEXT_BUDGET_S = 0.025  # all custom patterns of a site, on one text
PATTERN_MAX_LEN = 300
PATTERNS_MAX = 10
NAME_MAX_LEN = 40

# ---------------------------------------------------------------- payment cards
# a run of at least 13 digits, single spaces or dashes allowed between them (shorter runs never
# leave the regex engine: most chat text costs one C-level scan)
_CARD_RUN = re.compile(r"(?<![0-9])[0-9](?:[ \-]?[0-9]){12,}(?![0-9])")
_GROUP = re.compile(r"[0-9]+")
_DIGIT = re.compile(r"[0-9]")
CARD_MIN, CARD_MAX = 13, 19


_DOUBLED = str.maketrans("0123456789", "0246813579")  # a digit doubled, digits of the result summed


def luhn_valid(digits: str) -> bool:
    """The Luhn check of a string of ASCII digits (summed as bytes: no Python loop per digit)."""
    kept, doubled = digits[-1::-2], digits[-2::-2].translate(_DOUBLED)
    both = (kept + doubled).encode("ascii")
    return (sum(both) - 48 * len(both)) % 10 == 0


def is_card_number(digits: str) -> bool:
    return CARD_MIN <= len(digits) <= CARD_MAX and digits.isdigit() and luhn_valid(digits)


def card_spans(text: str) -> list[tuple[int, int]]:
    """Where card numbers are in ``text`` (start, end), in order."""
    spans: list[tuple[int, int]] = []
    for run in _CARD_RUN.finditer(text):
        found_run = run.group()
        if found_run.isdigit():  # one unbroken run: one candidate
            if is_card_number(found_run):
                spans.append((run.start(), run.end()))
            continue
        base = run.start()
        groups = [(g.start() + base, g.end() + base) for g in _GROUP.finditer(found_run)]
        digits = found_run.replace(" ", "").replace("-", "")
        offsets = [0]  # where each group starts in ``digits``
        for gs, ge in groups:
            offsets.append(offsets[-1] + ge - gs)
        i = 0
        while i < len(groups):
            # the longest window of whole groups from i with 13..19 digits that passes Luhn
            best_j = -1
            for j in range(i, len(groups)):
                count = offsets[j + 1] - offsets[i]
                if count > CARD_MAX:
                    break
                if count >= CARD_MIN and luhn_valid(digits[offsets[i] : offsets[j + 1]]):
                    best_j = j
            if best_j >= 0:
                spans.append((groups[i][0], groups[best_j][1]))
                i = best_j + 1
            else:
                i += 1
    return spans


def mask_card(number: str) -> str:
    """Bullets for every digit but the last four; separators kept."""
    keep = 4
    out = []
    for ch in reversed(number):
        if ch.isdigit():
            out.append(ch if keep > 0 else BULLET)
            keep -= 1
        else:
            out.append(ch)
    return "".join(reversed(out))


# ---------------------------------------------------------------- IBANs
# ISO 13616 registry (SWIFT): country -> IBAN length.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
# letters -> their two-digit numbers (A=10 … Z=35) for the mod-97 check
_IBAN_DIGITS = str.maketrans({chr(c): str(c - 55) for c in range(ord("A"), ord("Z") + 1)})
# per length: exactly that many letters and digits, single spaces allowed between them
_IBAN_EXACT = {
    n: re.compile(rf"[A-Za-z]{{2}}[0-9]{{2}}(?: ?[A-Za-z0-9]){{{n - 4}}}(?![A-Za-z0-9])", re.ASCII)
    for n in set(IBAN_LENGTHS.values())
}
_IBAN_CANDIDATE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}(?: ?[A-Za-z0-9]){11,31}", re.ASCII)


def iban_valid(iban: str) -> bool:
    """``iban``: letters and digits only, any case. Country length and the mod-97 check."""
    iban = iban.upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum() or not iban.isascii():
        return False
    moved = iban[4:] + iban[:4]
    return int(moved.translate(_IBAN_DIGITS)) % 97 == 1


def iban_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        m = _IBAN_CANDIDATE.search(text, pos)
        if m is None:
            return spans
        start = m.start()
        length = IBAN_LENGTHS.get(text[start : start + 2].upper())
        end = None
        if length is not None:
            exact = _IBAN_EXACT[length].match(text, start)
            if exact is not None and iban_valid(exact.group().replace(" ", "")):
                end = exact.end()
        if end is not None:
            spans.append((start, end))
            pos = end
        else:
            pos = start + 1


def mask_iban(iban: str) -> str:
    compact = iban.replace(" ", "")
    return f"[IBAN {BULLET * 4}{compact[-4:].upper()}]"


# ---------------------------------------------------------------- custom patterns
class PatternError(ValueError):
    """A custom pattern that cannot be used (the message says why, for the administrator)."""


# Inputs on which a pattern must finish well within its budget to be accepted (catastrophic
# backtracking shows on long runs of one character followed by one that breaks the match).
_PROBES = tuple(
    c * 3000 + end for c, end in (("a", "!"), ("1", "x"), (" ", "!"), ("ab", "!"), ("a1", "!"), ("x", "\n"))
)
PROBE_BUDGET_S = 0.05


def compile_pattern(pattern: str) -> regex.Pattern[str]:
    """Compile a custom pattern as stored; ``PatternError`` when it does not compile."""
    try:
        return regex.compile(pattern, regex.V0)
    except (regex.error, ValueError, OverflowError, RecursionError) as exc:
        raise PatternError(f"the pattern does not compile: {str(exc)[:120]}") from None


def check_pattern(pattern: str) -> regex.Pattern[str]:
    """Validate an administrator's pattern on save: it compiles, is at most ``PATTERN_MAX_LEN``
    characters, cannot match the empty string, and finishes in time on the probe inputs."""
    if not isinstance(pattern, str) or not pattern:
        raise PatternError("the pattern is empty")
    if len(pattern) > PATTERN_MAX_LEN:
        raise PatternError(f"the pattern is longer than {PATTERN_MAX_LEN} characters")
    compiled = compile_pattern(pattern)
    try:
        if compiled.fullmatch("", timeout=PROBE_BUDGET_S) is not None or compiled.search(
            "", timeout=PROBE_BUDGET_S
        ) is not None:
            raise PatternError("the pattern matches the empty string (it would mask between every character)")
        for probe in _PROBES:
            compiled.search(probe, timeout=PROBE_BUDGET_S)
            m = compiled.search("x" + probe[:40], timeout=PROBE_BUDGET_S)
            if m is not None and m.end() == m.start():
                raise PatternError("the pattern matches the empty string (it would mask between every character)")
    except TimeoutError:
        raise PatternError("the pattern is too slow (catastrophic backtracking): simplify it") from None
    return compiled


# ---------------------------------------------------------------- one site's policy, compiled
class Redaction(NamedTuple):
    text: str  # the masked text
    kinds: tuple[str, ...]  # what was found: "card", "iban", a custom pattern's name, "withheld"


@dataclass(frozen=True, slots=True)
class CustomPattern:
    name: str
    compiled: regex.Pattern[str]

    def label(self, _match: regex.Match[str]) -> str:
        """What a match becomes (a function: the name is never read as a replacement template)."""
        return f"[{self.name}]"


@dataclass(slots=True)
class Redactor:
    cards: bool
    ibans: bool
    keep_originals: bool
    patterns: tuple[CustomPattern, ...] = field(default_factory=tuple)
    # all the patterns as one alternation (``screen_for``): one search tells that none matches
    screen: regex.Pattern[str] | None = None
    # the screen (or the one pattern) when it may search texts joined by newlines (``joinable``)
    joined: regex.Pattern[str] | None = None
    budget_s: float = TEXT_BUDGET_S
    timeouts: int = 0  # texts withheld because the patterns ran out of time (for the logs and tests)

    @property
    def active(self) -> bool:
        return self.cards or self.ibans or bool(self.patterns)

    def redact(self, text: str) -> Redaction | None:
        """``text`` masked, or ``None`` when nothing in it is to be masked."""
        text, kinds = self._builtin(text)
        if self.patterns:
            masked = self._custom(text, kinds)
            if masked is None:
                self.timeouts += 1
                return Redaction(WITHHELD, ("withheld",))
            text = masked
        return Redaction(text, tuple(kinds)) if kinds else None

    def redact_many(self, texts: Sequence[str]) -> list[Redaction | None]:
        """``redact`` of each text, in order. When the custom patterns may be screened over the
        texts joined (``joined``: nothing in them looks outside what they match), one search over
        all of them (after cards and IBANs are masked, as ``redact`` searches) says that none
        matches anywhere, the common case: one call and one time limit for a whole batch instead
        of one per text. A hit, or a screen out of time, and each text goes through ``redact``."""
        if self.joined is None or len(texts) < 2:
            return [self.redact(t) for t in texts]
        builtin = [self._builtin(t) for t in texts]
        try:
            hit = self.joined.search("\n".join(t for t, _ in builtin), timeout=self.budget_s) is not None
        except TimeoutError:
            hit = True
        if hit:
            return [self.redact(t) for t in texts]
        return [Redaction(t, tuple(kinds)) if kinds else None for t, kinds in builtin]

    def _builtin(self, text: str) -> tuple[str, list[str]]:
        """Cards and IBANs masked: the text, and the kinds found."""
        kinds: list[str] = []
        # a card and an IBAN both hold digits: most chat text has none, and costs one C-level scan
        if (self.cards or self.ibans) and _DIGIT.search(text) is not None:
            spans: list[tuple[int, int, str]] = []
            if self.cards:
                spans += [(s, e, "card") for s, e in card_spans(text)]
            if self.ibans:
                spans += [(s, e, "iban") for s, e in iban_spans(text)]
            if spans:
                text = _apply(text, spans)
                kinds += sorted({k for _, _, k in spans})
        return text, kinds

    def _custom(self, text: str, kinds: list[str]) -> str | None:
        """The custom patterns applied within the budget (``None``: out of time). The budget is
        wall-clock (``regex``'s ``timeout=``), so a thread that the OS merely descheduled on a busy
        machine could run out of it without any work done: when a timeout comes after less than
        half the budget of this thread's own CPU time, the patterns get one more budget. (The CPU
        time the first attempt starts from is read at most ``_CPU_MARK_AGE_S`` earlier, not per
        text: reading it is a system call, and a few µs of other work only make a second budget
        rarer.)"""
        for attempt in (0, 1):
            now = time.perf_counter()
            cpu = _cpu_mark(now) if attempt == 0 else time.thread_time()
            deadline = now + self.budget_s
            out, found = text, []
            try:
                if self.screen is not None and self.screen.search(text, timeout=self.budget_s) is None:
                    return text  # no pattern matches anywhere
                for p in self.patterns:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        raise TimeoutError
                    # a search first: most texts match nothing, and a search costs less than a substitution
                    if p.compiled.search(out, timeout=remaining) is None:
                        continue
                    out, n = p.compiled.subn(p.label, out, timeout=max(deadline - time.perf_counter(), 1e-4))
                    if n:
                        found.append(p.name)
            except TimeoutError:
                if attempt == 0 and time.thread_time() - cpu < self.budget_s / 2:
                    continue  # descheduled, not slow: once more
                return None
            kinds += found
            return out
        return None


def _apply(text: str, spans: Iterable[tuple[int, int, str]]) -> str:
    out: list[str] = []
    pos = 0
    for start, end, kind in sorted(spans):
        if start < pos:  # overlapping finds (a card inside an IBAN): the first one wins
            continue
        out.append(text[pos:start])
        found = text[start:end]
        out.append(mask_card(found) if kind == "card" else mask_iban(found))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def build(*, cards: bool, ibans: bool, keep_originals: bool, patterns: Iterable[tuple[str, str]]) -> Redactor:
    """A site's redactor from its stored policy (``patterns``: enabled (name, regex) pairs, already
    validated on save: one that no longer compiles is skipped, never fatal to the writer)."""
    compiled = []
    for name, pattern in patterns:
        try:
            compiled.append(CustomPattern(name, compile_pattern(pattern)))
        except PatternError:
            continue
    sources = [p.compiled.pattern for p in compiled]
    screen = screen_for(sources) if len(compiled) > 1 else None
    one = compiled[0].compiled if len(compiled) == 1 else screen
    return Redactor(
        cards=cards,
        ibans=ibans,
        keep_originals=keep_originals,
        patterns=tuple(compiled),
        screen=screen,
        joined=one if one is not None and joinable(sources) else None,
    )


# Whatever lets a match depend on text outside the span it matches: anchors, word boundaries and
# the like, lookarounds, atomic groups and possessive quantifiers (they commit on what follows),
# control verbs, fuzzy constraints, grapheme clusters. Checked on the pattern's source as written,
# so an escaped or bracketed ``^`` or ``$`` is refused too: conservative, never wrong.
_CONTEXT = re.compile(r"[\^$]|\\[AZzGbBmMKX]|\(\?<?[=!]|\(\?>|[*+?}]\+|\(\*|\{\s*[A-Za-z]")


def joinable(patterns: Iterable[str]) -> bool:
    """True when searching texts joined by newlines finds a match exactly when one of the texts
    holds one, or where a match spans a newline (a false alarm: each text is then searched alone),
    never missing one: no part of any pattern looks outside the span it matches (``_CONTEXT``)."""
    return all(_CONTEXT.search(p) is None for p in patterns)


_CPU_MARK_AGE_S = 0.002
_cpu_marks = threading.local()


def _cpu_mark(now: float) -> float:
    """This thread's CPU time, as read at most ``_CPU_MARK_AGE_S`` before ``now``."""
    mark: tuple[float, float] | None = getattr(_cpu_marks, "mark", None)
    if mark is None or now - mark[0] > _CPU_MARK_AGE_S:
        mark = _cpu_marks.mark = (now, time.thread_time())
    return mark[1]


_GLOBAL_FLAGS = re.compile(r"^\(\?([imsx]+)\)")
_NOT_COMBINABLE = re.compile(r"\\[1-9g]|\(\?P|\(\?<[A-Za-z_]|\(\?\(|\(\?[a-zA-Z]*[-)]|\(\?[a-zA-Z]+\)|\(\?[0-9R&|]")


def screen_for(patterns: list[str]) -> regex.Pattern[str] | None:
    """One alternation of ``patterns`` that matches somewhere exactly when one of them does, or
    ``None`` when that cannot be guaranteed (back-references, named or conditional groups, inline
    flags but a leading global one, which becomes a scoped group)."""
    parts = []
    for pattern in patterns:
        flags = _GLOBAL_FLAGS.match(pattern)
        body = pattern[flags.end() :] if flags else pattern
        if _NOT_COMBINABLE.search(body):
            return None
        parts.append(f"(?{flags.group(1)}:{body})" if flags else f"(?:{body})")
    try:
        return regex.compile("|".join(parts), regex.V0)
    except (regex.error, ValueError, OverflowError, RecursionError):
        return None
