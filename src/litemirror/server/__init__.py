"""asyncio wiring: the member process (and later the arbiter), sessions, group commit."""
