"""Whether the mirror could fail over automatically right now (pure).

One rule for the command line (``litemirror status``) and the Mirror Monitor
page: given every member's status and the arbiter's, name everything that
stands in the way of a takeover, or say it is ready.
"""

from __future__ import annotations

from typing import Any


def failover_readiness(status: dict[str, Any]) -> tuple[bool, str]:
    """Whether the backup could take over now, as one sentence: (ready, sentence).

    A takeover needs all of: an active backup; the primary and the backup
    each holding a session with the arbiter (each member's own report); and
    the arbiter in contact with both (its own report when it answered,
    otherwise what it last told the primary). Any one missing is named.
    """
    members = status.get("members") or []
    primary = next((st for st in members if st.get("role") == "primary"), None)
    if primary is None:
        return False, "Automatic failover NOT possible: no primary."
    fo = primary.get("failover") or {}
    name = str(primary.get("member"))
    problems: list[str] = []
    backup_name: str | None = None
    if not fo.get("backup_active"):
        problems.append(f"no active backup ({fo.get('state')})")
    backup = next(
        (
            st
            for st in members
            if st.get("kind") == "failover" and st.get("member") != primary.get("member")
        ),
        None,
    )
    if backup is not None:
        backup_name = str(backup.get("member"))
    said: set[str] = set()  # members already named: one problem each is enough
    for who, st in ((name, primary), (backup_name, backup)):
        if who is None or st is None:
            continue
        if st.get("role") == "down":
            problems.append(f"{who} does not answer ({st.get('error')})")
            said.add(who)
            continue
        mfo = st.get("failover") or {}
        if not mfo.get("arbiter_up"):
            why = (mfo.get("arbiter_session") or {}).get("error")
            problems.append(f"{who} has no session with the arbiter" + (f" ({why})" if why else ""))
            said.add(who)
    # The arbiter must have *recorded* the backup active (the primary asks when the
    # backup catches up; until the record says so, a takeover would be refused), and
    # the backup must have heard it: it claims only on the record it last saw.
    for who, st in ((name, primary), (backup_name, backup)):
        if who is None or st is None or who in said or not fo.get("backup_active"):
            continue
        rec = (st.get("failover") or {}).get("arbiter_record")
        if rec is not None and not rec.get("backup_active"):
            problems.append(
                f"the arbiter has not recorded {backup_name} as active yet"
                if who == name
                else f"{who} has not yet heard from the arbiter that it is active"
            )
            said.add(who)
    arb = status.get("arbiter") or {}
    if arb.get("state") == "down":
        problems.append(f"the arbiter does not answer ({arb.get('error')})")
        sees = set(fo.get("arbiter_sees") or [])
    else:
        sees = set(arb.get("in_contact") or [])
    for who in (name, backup_name):
        if who is not None and who not in sees and who not in said:
            problems.append(f"the arbiter is not in contact with {who}")
    if problems:
        return False, "Automatic failover NOT possible: " + "; ".join(problems) + "."
    return True, (
        f"Automatic failover ready: backup {backup_name} active; {name} and {backup_name} "
        "in contact with the arbiter."
    )
