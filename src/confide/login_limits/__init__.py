"""Login limits: allowed address ranges and weekly time windows, per role and per operator (ADR 0016)."""
