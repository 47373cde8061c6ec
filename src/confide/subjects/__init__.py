"""Data-subject rights: find a person, collect everything held about them, export and deliver it
(issue 8; ADR 0026)."""
