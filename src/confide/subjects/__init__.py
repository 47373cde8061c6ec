"""Data-subject rights: find a person, export everything held about them (issue 8; ADR 0026, ADR 0027)."""
