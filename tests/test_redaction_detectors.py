"""Redaction detectors (no database): card numbers (Luhn), IBANs (mod 97), custom patterns with a
time limit, and the checks an administrator's pattern passes on save."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.redaction import detectors as d
from confide.redaction.schemas import PolicyIn

ALL = d.build(cards=True, ibans=True, keep_originals=False, patterns=[("order", r"ORD-[0-9]{6}")])

CARDS = {
    "visa": "4111 1111 1111 1111",
    "visa-13": "4222222222222",
    "mastercard": "5555-5555-5555-4444",
    "mastercard-2": "2223003122003222",
    "amex": "3782 822463 10005",
    "discover": "6011111111111117",
    "diners": "3056 9309 0259 04",
    "jcb": "3530-1113-3330-0000",
    "unionpay-19": "6212345678901265",
}


def _masked(text: str) -> str:
    found = ALL.redact(text)
    assert found is not None, text
    return found.text


@pytest.mark.parametrize("brand", list(CARDS))
def test_card_numbers_of_every_brand_are_masked_keeping_the_last_four(brand: str) -> None:
    number = CARDS[brand]
    out = _masked(f"my card is {number}, thanks")
    digits = re.sub(r"\D", "", number)
    assert out.startswith("my card is ")
    assert out.endswith(", thanks")
    masked = out[len("my card is ") : -len(", thanks")]
    assert re.sub(r"\D", "", masked) == digits[-4:]  # only the last four digits are left
    assert masked.count("•") == len(digits) - 4
    assert len(masked) == len(number)  # separators kept, one bullet per digit


def test_the_documented_form() -> None:
    assert _masked("4242 4242 4242 4242") == "•••• •••• •••• 4242"


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 please",  # fails Luhn
        "ticket 1234-5678-9012-3456",  # fails Luhn
        "call 0049 30 1234567",  # too few digits
        "tracking 42424242424242424242424242",  # one unbroken run longer than 19 digits
        "hello there",
    ],
)
def test_digit_strings_that_are_not_cards_are_left_alone(text: str) -> None:
    assert ALL.redact(text) is None


def test_a_card_after_other_numbers_is_still_found() -> None:
    assert _masked("ref 12 4242 4242 4242 4242 ok") == "ref 12 •••• •••• •••• 4242 ok"


IBANS = [
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "gb82 west 1234 5698 7654 32",
    "FR14 2004 1010 0505 0001 3M02 606",
    "NL91ABNA0417164300",
    "BE68539007547034",
    "NO9386011117947",
    "CH9300762011623852957",
]


@pytest.mark.parametrize("iban", IBANS)
def test_ibans_are_masked_with_their_last_four(iban: str) -> None:
    out = _masked(f"pay to {iban} today")
    compact = iban.replace(" ", "").upper()
    assert out == f"pay to [IBAN ••••{compact[-4:]}] today"


@pytest.mark.parametrize("text", ["DE89 3704 0044 0532 0130 01", "XX89370400440532013000", "DE8937040044053201300"])
def test_invalid_ibans_are_left_alone(text: str) -> None:
    # (IBANs only: the digits of a wrong IBAN may still pass Luhn as a card number would)
    assert d.build(cards=False, ibans=True, keep_originals=False, patterns=[]).redact(text) is None


def test_custom_pattern() -> None:
    assert _masked("about ORD-123456 and ORD-654321") == "about [order] and [order]"
    assert ALL.redact("about ORD-12345") is None


def test_a_name_is_never_a_replacement_template() -> None:
    r = d.build(cards=False, ibans=False, keep_originals=False, patterns=[("g1", r"(x)")])
    r.patterns = (d.CustomPattern(r"\1 \g<0>", d.compile_pattern("(x)")),)
    assert r.redact("axb") == d.Redaction(r"a[\1 \g<0>]b", (r"\1 \g<0>",))


# ---------------------------------------------------------------- custom patterns on save
@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("(", "does not compile"),
        ("[a-", "does not compile"),
        ("a*", "empty string"),
        (r"\b", "empty string"),
        ("(?=x)", "empty string"),
        ("(a+)+$", "too slow"),
        ("(a|aa)+$", "too slow"),
        ("x" * 301, "longer than"),
    ],
)
def test_bad_patterns_are_refused_on_save(pattern: str, why: str) -> None:
    with pytest.raises(d.PatternError, match=why):
        d.check_pattern(pattern)
    with pytest.raises(ValueError, match=why if why != "longer than" else "300"):
        PolicyIn.model_validate({"patterns": [{"name": "bad", "regex": pattern}]})


def test_catastrophic_pattern_at_run_time_is_bounded_and_withheld() -> None:
    # (validated patterns are probed; a pattern that slips through is still bounded at run time)
    r = d.Redactor(cards=True, ibans=True, keep_originals=False,
                   patterns=(d.CustomPattern("slow", d.compile_pattern(r"(a+)+$")),))
    start = time.perf_counter()
    found = r.redact("a" * 20_000 + "!")
    elapsed = time.perf_counter() - start
    assert found == d.Redaction(d.WITHHELD, ("withheld",))
    assert elapsed < 1.0, elapsed  # the budget is 25 ms; generous for a shared machine
    assert r.timeouts == 1


# ---------------------------------------------------------------- properties: no false negatives
def _luhn_complete(body: str) -> str:
    for check in "0123456789":
        if d.luhn_valid(body + check):
            return body + check
    raise AssertionError


@settings(max_examples=300, deadline=None)
@given(
    length=st.integers(min_value=13, max_value=19),
    data=st.data(),
    sep=st.sampled_from(["", " ", "-"]),
    group=st.sampled_from([4, 5, 3]),
)
def test_every_valid_card_number_is_masked(length: int, data: st.DataObject, sep: str, group: int) -> None:
    body = data.draw(st.text(alphabet="0123456789", min_size=length - 1, max_size=length - 1))
    number = _luhn_complete(body)
    shown = sep.join(number[i : i + group] for i in range(0, len(number), group)) if sep else number
    found = ALL.redact(f"card: {shown}.")
    assert found is not None, shown
    assert found.text == f"card: {d.mask_card(shown)}."
    assert re.sub(r"\D", "", found.text) == number[-4:]


def _iban(country: str, bban: str) -> str:
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(ch, 36)) for ch in moved)) % 97
    return f"{country}{check:02d}{bban}"


@settings(max_examples=300, deadline=None)
@given(country=st.sampled_from(sorted(d.IBAN_LENGTHS)), data=st.data(), spaced=st.booleans())
def test_every_valid_iban_is_masked(country: str, data: st.DataObject, spaced: bool) -> None:
    length = d.IBAN_LENGTHS[country]
    bban = data.draw(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=length - 4, max_size=length - 4))
    iban = _iban(country, bban)
    assert d.iban_valid(iban)
    shown = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if spaced else iban
    redactor = d.build(cards=False, ibans=True, keep_originals=False, patterns=[])
    found = redactor.redact(f"IBAN: {shown} thanks")
    assert found is not None, shown
    assert found.text == f"IBAN: [IBAN ••••{iban[-4:]}] thanks"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_redact_never_fails_on_any_text(text: str) -> None:
    found = ALL.redact(text)
    assert found is None or isinstance(found.text, str)


_SCREENED = ["TCK-[0-9]{5}", r"(?i)password\s*[:=]\s*\S+", r"\bab+c\b", "(?x) x y z", "^start", "end$", "q(?=u)"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcxyzTCK-0123456789 :=PASSWORDpassword\nqustartend", max_size=60))
def test_the_combined_screen_matches_exactly_when_a_pattern_does(text: str) -> None:
    screen = d.screen_for(_SCREENED)
    assert screen is not None
    singles = [d.compile_pattern(p) for p in _SCREENED]
    assert (screen.search(text) is not None) == any(p.search(text) is not None for p in singles)


def test_patterns_that_cannot_be_combined_are_not_screened() -> None:
    assert d.screen_for([r"(a)\1", "x"]) is None
    assert d.screen_for(["(?P<n>a)", "x"]) is None
    assert d.screen_for(["a(?i)b", "x"]) is None
    r = d.build(cards=False, ibans=False, keep_originals=False, patterns=[("r", r"(a)\1"), ("x", "x")])
    assert r.screen is None
    assert r.redact("aa x") == d.Redaction("[r] [x]", ("r", "x"))


# Patterns that look only at what they match (joinable), some overlapping the cards' and IBANs'
# masks (a bullet, "IBAN"), and one matching across lines.
_JOINABLE = ["TCK-[0-9]{5}", r"(?i)password\s*[:=]\s*\S+", "ab+c", "[•]{4} 42", r"\[IBAN", "x\ny", "qu+"]


def _pair(patterns: list[str]) -> tuple[d.Redactor, d.Redactor]:
    named = [(f"p{i}", p) for i, p in enumerate(patterns)]
    return (d.build(cards=True, ibans=True, keep_originals=False, patterns=named),
            d.build(cards=True, ibans=True, keep_originals=False, patterns=named))


@settings(max_examples=300, deadline=None)
@given(st.lists(
    st.one_of(
        st.text(alphabet="abcxyqu\nTCK-0123456789 :=PASSWORDpassword•", max_size=40),
        st.sampled_from(["4242 4242 4242 4242", "DE89 3704 0044 0532 0130 00", "TCK-12345", "password: x"]),
    ),
    max_size=8,
))
def test_a_batch_is_masked_exactly_as_each_text_alone(texts: list[str]) -> None:
    for patterns in (_JOINABLE, _JOINABLE[:1]):  # several patterns (their screen), and one alone
        batch, alone = _pair(patterns)
        assert batch.joined is not None
        assert batch.redact_many(texts) == [alone.redact(t) for t in texts]


@pytest.mark.parametrize(
    "pattern",
    ["^start", "end$", r"\bword\b", r"\Bx", r"\Aa", r"a\Z", "q(?=u)", "q(?!u)", "(?<=a)b", "(?<!a)b",
     "(?>a+)b", "a++b", "a*+b", "a?+b", "a{2}+b", "(*SKIP)a", "(?:abc){e<=1}", r"\X", r"a\Kb", r"\$"],
)
def test_patterns_that_look_beyond_their_match_are_never_screened_joined(pattern: str) -> None:
    assert not d.joinable([pattern])
    r = d.build(cards=False, ibans=False, keep_originals=False, patterns=[("p", pattern), ("t", "TCK")])
    assert r.joined is None


def test_texts_joined_are_not_masked_across_their_boundary() -> None:
    r = d.build(cards=False, ibans=False, keep_originals=False, patterns=[("xy", "x\ny")])
    assert r.joined is not None
    assert r.redact_many(["abx", "yab"]) == [None, None]  # the screen's false alarm; each text alone
    assert r.redact_many(["x\ny", "ok"]) == [d.Redaction("[xy]", ("xy",)), None]


def test_a_batch_holding_a_catastrophic_text_is_bounded_and_withholds_only_that_text() -> None:
    r = d.build(cards=False, ibans=False, keep_originals=False, patterns=[("slow", r"(a|aa)+b"), ("t", "TCK")])
    r.budget_s = 0.02
    assert r.joined is not None
    started = time.perf_counter()
    found = r.redact_many(["fine", "a" * 40, "TCK"])
    assert time.perf_counter() - started < 0.5
    assert found == [None, d.Redaction(d.WITHHELD, ("withheld",)), d.Redaction("[t]", ("t",))]
