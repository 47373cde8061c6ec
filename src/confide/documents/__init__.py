"""Documents: CSV, Excel and PDF writers with no database, no network and no domain knowledge (ADR 0027)."""
