"""The member process: lifecycle and wiring."""
