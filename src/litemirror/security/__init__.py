"""Security: certificate tooling and TLS contexts (the wiring lives in ``server``)."""
