"""Hostile passkey answers (hypothesis): whatever shape the browser's JSON takes, verification says
no (None) or the parser refuses it with ``Invalid``; it never raises anything else."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from confide.core import crypto
from confide.core.errors import Invalid
from confide.two_factor import webauthn_rp

RP = webauthn_rp.RelyingParty("localhost", "http://localhost:8123")
_b64ish = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/!", max_size=80)
_leaf = st.none() | st.booleans() | st.integers() | _b64ish
_json = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_b64ish, inner, max_size=4),
                     max_leaves=12)
_response = st.fixed_dictionaries({}, optional={k: _json | _b64ish for k in (
    "clientDataJSON", "attestationObject", "authenticatorData", "signature", "userHandle", "transports")})
_credential = st.fixed_dictionaries({"id": _b64ish, "response": _response},
                                    optional={"rawId": _json, "type": _json, "clientExtensionResults": _json})


@settings(max_examples=300, deadline=None)
@given(_credential)
def test_junk_never_verifies_and_never_crashes(credential: dict[str, Any]) -> None:
    try:
        parsed = webauthn_rp.parse_credential(json.dumps(credential))
    except Invalid:
        return
    challenge = crypto.new_challenge()
    assert webauthn_rp.verify_registration(RP, parsed, challenge=challenge) is None
    assert webauthn_rp.verify_authentication(RP, parsed, challenge=challenge, public_key=b"\xa0", sign_count=0) is None


@given(st.text(max_size=200))
def test_the_parser_refuses_what_is_not_a_credential(raw: str) -> None:
    try:
        parsed = webauthn_rp.parse_credential(raw)
    except Invalid:
        return
    assert isinstance(parsed["id"], str)
