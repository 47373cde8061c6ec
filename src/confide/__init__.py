"""Confide: self-hostable, GDPR-compliant live chat."""

__version__ = "0.1.0"
