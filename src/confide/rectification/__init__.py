"""Rectification of a person's details everywhere they are held (GDPR Art. 16, ADR 0032)."""
