"""Consent: processing purposes, their versioned notices, the append-only consent ledger and
``may`` (ADR 0018, docs/privacy/consent.md)."""
