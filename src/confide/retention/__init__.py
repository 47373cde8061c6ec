"""Retention: how long each category of personal data is kept, per workspace and site; legal
holds; the sweep that deletes what is past its period (ADR 0030)."""
