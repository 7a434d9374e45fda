"""Listening, TLS and dialing other members."""
