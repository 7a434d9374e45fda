"""Failover: the agent, role transitions, the arbiter client, hooks, virtual IP, promotion."""
