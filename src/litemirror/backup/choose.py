"""Which member takes a backup (pure): a caught-up standby, else the primary.

The standby takes the saves so the primary is not burdened (the seeds' way).
From the primary's status: its replicas with their kind, link state and lag.
A candidate is a ``failover`` or ``dr`` replica whose link is active or streaming and
whose lag is at most ``max_lag_records`` journal records; the ``failover``
backup is preferred (it holds every acknowledged commit), then ``dr``, then
the least lag, then the name. Without one the primary takes the backup.
"""

from __future__ import annotations

from typing import Any

#: Records a standby may be behind and still take the backup instead of the primary.
MAX_LAG_RECORDS = 100
_KIND_ORDER = {"failover": 0, "dr": 1}


def choose_member(
    primary: dict[str, Any], max_lag_records: int = MAX_LAG_RECORDS
) -> tuple[str, str]:
    """(member name, one-sentence reason) from the primary's status."""
    candidates = []
    for r in primary.get("replicas") or []:
        kind = r.get("kind")
        records = (r.get("lag") or {}).get("records")
        if (
            kind not in _KIND_ORDER
            or r.get("state") not in ("active", "streaming")
            or records is None
        ):
            continue
        if records <= max_lag_records:
            candidates.append((_KIND_ORDER[kind], records, str(r["member"]), kind))
    name = primary["member"]
    if not candidates:
        return name, f"the primary {name} takes it: no failover or dr member is caught up"
    _, records, chosen, kind = min(candidates)
    return chosen, f"{kind} member {chosen} takes it ({records} record(s) behind the primary)"
