"""Operations: HTTP API, metrics, canary, notifier, event log, the Monitor page."""
