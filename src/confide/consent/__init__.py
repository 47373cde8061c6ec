"""Consent: processing purposes, their versioned notices, the append-only consent ledger and
``may`` (ADR 0018, docs/privacy/consent.md).

From the bottom up: ``purposes`` (keys and defaults, data only), ``rules`` (the ledger's
append-only triggers), ``notices`` (a workspace's purposes and notices as rows), ``ledger`` (a
choice recorded, a subject's standing) beside ``removal`` (erasure and retention of ledger rows),
``questions`` (``may``, ``objected``, ``allowed_subjects``), then ``widget`` (the Privacy view),
``links`` (one-click withdrawal from e-mail), ``hooks`` (the job runner's guard and handler),
``admin`` (the back office) and ``statements`` (an operator records what a visitor said)."""
