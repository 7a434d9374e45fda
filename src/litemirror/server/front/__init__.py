"""What clients talk to: the client session, users and logins, admin actions."""
