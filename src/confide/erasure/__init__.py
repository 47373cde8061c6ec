"""Erasure of a data subject for good (issue 8 point 5, ADR 0028): preview, erase, tombstones,
certificates, statistics that survive, bulk erasure by filter."""
