"""The one place that decides access. Denial looks exactly like "not found"."""
