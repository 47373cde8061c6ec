"""One module per area of the dashboard; each has its own ``router``."""
