"""Two-factor authentication: TOTP with recovery codes, passkeys and security keys (WebAuthn), the
second step of a log-in (a short-lived, single-use ticket between the first factor and the session),
and its enforcement per workspace and per role. See ADR 0014."""
