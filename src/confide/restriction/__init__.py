"""Restriction of processing (GDPR Art. 18, ADR 0031)."""
