"""The arbiter process."""
