"""The audit log: append-only, hash-chained, written in the same transaction as what it records."""

from confide.audit import rules as rules  # the append-only triggers follow the tables (create_all)
