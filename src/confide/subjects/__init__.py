"""Data-subject rights: find a person, collect everything held about them, export it in four
formats and deliver it (issue 8; ADR 0026, ADR 0027)."""
