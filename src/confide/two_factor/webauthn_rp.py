"""The relying party's side of WebAuthn, with py_webauthn: options for the browser's
``navigator.credentials.create`` / ``.get`` and the verification of what it answered. No state here:
challenges and credentials are kept by ``two_factor.service``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import webauthn
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from confide.core.errors import Invalid

TIMEOUT_MS = 120_000
MAX_CREDENTIAL_JSON = 64 * 1024


@dataclass(frozen=True)
class RelyingParty:
    """Who the credentials are for: the RP id is our host name, the origin our origin as the browser
    sees it (``public_url`` when set; see ``web.origins.server_origin``)."""

    rp_id: str
    origin: str
    name: str = "Confide"


@dataclass(frozen=True)
class NewCredential:
    credential_id: str  # base64url
    public_key: bytes
    sign_count: int


def b64url(data: bytes) -> str:
    return bytes_to_base64url(data)


def from_b64url(text: str) -> bytes:
    try:
        return webauthn.base64url_to_bytes(text)
    except (ValueError, TypeError):
        raise Invalid("this passkey answer is malformed") from None


def registration_options(
    rp: RelyingParty,
    *,
    user_id: str,
    user_name: str,
    display_name: str,
    challenge: bytes,
    exclude: list[str],
) -> str:
    options = webauthn.generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.name,
        user_id=user_id.encode("utf-8"),
        user_name=user_name,
        user_display_name=display_name,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=from_b64url(c)) for c in exclude],
    )
    return webauthn.options_to_json(options)


def authentication_options(rp: RelyingParty, *, challenge: bytes, allow: list[str]) -> str:
    options = webauthn.generate_authentication_options(
        rp_id=rp.rp_id,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        allow_credentials=[PublicKeyCredentialDescriptor(id=from_b64url(c)) for c in allow],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return webauthn.options_to_json(options)


def parse_credential(raw: str) -> dict[str, Any]:
    """The browser's answer (JSON of a PublicKeyCredential), bounded and shaped, or ``Invalid``."""
    if not isinstance(raw, str) or len(raw) > MAX_CREDENTIAL_JSON:
        raise Invalid("this passkey answer is malformed")
    try:
        value = json.loads(raw)
    except ValueError:
        raise Invalid("this passkey answer is malformed") from None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("id"), str)
        or not isinstance(value.get("response"), dict)
    ):
        raise Invalid("this passkey answer is malformed")
    if len(value["id"]) > 1400:
        raise Invalid("this passkey answer is malformed")
    return value


def verify_registration(rp: RelyingParty, credential: dict[str, Any], *, challenge: bytes) -> NewCredential | None:
    """The new credential, or None when the answer does not verify (wrong challenge, origin, RP id,
    signature, or a malformed structure)."""
    try:
        verified = webauthn.verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.rp_id, expected_origin=rp.origin
        )
    except (WebAuthnException, ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError):
        return None  # the browser's answer is attacker-controlled: any structure that fails is a refusal
    return NewCredential(b64url(verified.credential_id), verified.credential_public_key, verified.sign_count)


def verify_authentication(
    rp: RelyingParty, credential: dict[str, Any], *, challenge: bytes, public_key: bytes, sign_count: int
) -> int | None:
    """The authenticator's new sign count, or None when the answer does not verify. A sign count that
    did not grow (when the authenticator keeps one) is refused: a cloned authenticator."""
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError):
        return None
    return int(verified.new_sign_count)
