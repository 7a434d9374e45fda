"""What ``litemirror status`` shows of this member: one dict, read from every part.

The control protocol, the HTTP API and the Monitor page all show this; for
a caller who may not see everything it is filtered by
:func:`litemirror.security.visibility.status_view`.
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from litemirror.security.roles import Principal
from litemirror.security.visibility import audience_of, status_view
from litemirror.server.node.parts import Parts
from litemirror.server.ops.canary import status_fields as canary_status_fields
from litemirror.server.role import Role


class MemberStatus:
    """:class:`~litemirror.server.front.ports.StatusSource` over the member's parts."""

    def __init__(self, parts: Parts) -> None:
        self._p = parts

    def status(self, viewer: Principal | None = None) -> dict[str, Any]:
        """This member's status; as ``viewer`` may see it (security/visibility.py) when given."""
        if viewer is not None:
            p = self._p
            recent = [msgspec.to_builtins(ev) for ev in list(p.events.recent)[-5:]]
            return status_view(self.status(), audience_of(viewer, p.config().auth.require), recent)
        p = self._p
        role = p.role()
        rcv = p.replica.receiver
        j = p.journal
        segs = j.segments()
        out: dict[str, Any] = {
            "mirror": p.config().mirror.name,
            "member": p.me.name,
            "kind": p.me.kind,
            "address": p.me.address,
            "role": role.role,
            "state": role.state,
            "epoch": role.epoch,
            "lsn": j.last_lsn,
            "committed_lsn": p.position.confirmed_lsn(),
            "horizon": p.horizon.saved,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - p.started, 3),
            "databases": len(p.registry.names()),
            "open_databases": p.registry.open_count,
            "connections": p.connections.open_connections(),
            # How late the event loop runs a timer (heartbeats ride on it).
            "loop_lag_ms": p.loop_lag.status(),
            # Open connections (clients, members, CLI) per source address.
            "connections_by_host": dict(p.connections.by_host),
            # Connections by what they showed themselves to be, refusals by limit, caps.
            "admission": p.limits.status(),
            # Database sessions opened since start, per client address.
            "sessions_by_host": dict(p.connections.sessions_by_host),
            "tls": p.config.tls_status(),
            "journal": {
                "segments": len(segs),
                "bytes": sum(s.size_bytes for s in segs),
                "first_lsn": j.first_lsn,
                "fsyncs": p.writer.fsyncs,
                "records": p.writer.records,
            },
            "commits": sum(d.commits for d in p.registry.open_databases()),
            "reason": role.reason,
            "last_primary": p.state_file.current().last_primary,
            "events": [ev.message for ev in list(p.events.recent)[-5:]],
        }
        if role.role is Role.PRIMARY:
            now_ms = int(time.time() * 1000)
            out["backup_active"] = p.hub.backup_active
            out["replicas"] = [
                {
                    "member": ln.member,
                    "kind": ln.kind,
                    "state": ln.state,
                    "received_lsn": ln.received,
                    "durable_lsn": ln.durable,
                    "applied_lsn": ln.applied,
                    "last_contact_s": round(time.monotonic() - ln.last_contact, 3),
                    "lag": p.hub.lag(ln, now_ms),
                    "seed_progress": [ln.seed_done, ln.seed_total] if ln.seed_total else None,
                    "compression": ln.compression,
                    "bytes_sent": ln.bytes_sent,
                }
                for ln in p.hub.links.values()
            ]
        out["writable"] = role.writable
        out["database_states"] = [
            {"name": db.name, "lsn": db.applied_lsn, "state": "open"}
            for db in p.registry.open_databases()
        ]
        out["arbiter"] = p.config().mirror.arbiter
        if p.agent is not None:
            v = p.agent.view
            out["failover"] = {
                "state": v.state.value,
                "epoch": v.epoch,
                "holder": v.holder,
                "peer_up": v.peer_up,
                "arbiter_up": v.arbiter_up,
                # Whom the arbiter said, in its last answer, it is in contact with.
                "arbiter_sees": sorted(v.arbiter_sees),
                # This member's own session with the arbiter.
                "arbiter_session": None if p.agent.arbiter is None else p.agent.arbiter.session(),
                "backup_active": v.backup_active,
                # The arbiter's record as of its last answer: a backup takes over only
                # while it says the backup is active (asking is not enough).
                "arbiter_record": None
                if v.arbiter is None
                else {
                    "epoch": v.arbiter.epoch,
                    "holder": v.arbiter.holder,
                    "backup_active": v.arbiter.backup_active,
                },
                "decisions": p.agent.decisions[-5:],
            }
        out.update(canary_status_fields(p.canary, p.notifier))
        if p.archiver is not None:
            out["archive"] = p.archiver.status()
        if p.backup_scheduler is not None:
            out["backup_schedule"] = p.backup_scheduler.status()
        if p.backup_drill is not None:
            out["backup_drill"] = p.backup_drill.status()
        if rcv is not None:
            out["replication"] = rcv.status()
            if role.state not in ("fenced",):
                out["state"] = rcv.state
            if p.agent is None and p.me.kind in ("failover", "dr") and rcv.primary_missing:
                last = p.state_file.current().last_primary or "the primary"
                out["reason"] = (
                    f"no primary reachable (last: {last}); a mirror without an arbiter does "
                    f"not fail over by itself: if {last} is gone for good, run `litemirror "
                    f"promote --member {p.me.name} --force --config FILE` (it says what "
                    "may be lost first)"
                )
        return out
