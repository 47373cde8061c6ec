"""The record of processing activities (Art. 30) and data map, generated from the registry and the
configuration (ADR 0030)."""
