"""The web console at /console: static files that use the same HTTP API as any client."""
