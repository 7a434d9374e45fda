"""Replication between members: the primary's hub and senders, the receiver, seeding, rejoin."""
