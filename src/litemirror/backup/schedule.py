"""Backup schedules (pure): when a scheduled backup is due, who takes it, what ``keep`` deletes.

The primary owns the schedule (one member is primary at a time; a new primary
takes the schedule over after a failover). It learns when the newest backup
set of the mirror was taken from the sets on the members' disks, so a new
primary does not repeat a backup the old one had done: the next one is due
one interval (``every``) after the newest set, or at the first ``cron`` time
after it. With no set at all, an ``every`` schedule is due at once and a
``cron`` schedule at its first time after the schedule started.

The due time doubles as the backup's *slot*: the member asked to take it
first looks for a set of its own taken at or after the slot and, if there is
one, answers with it instead of taking another. A request repeated by a new
primary (the old one died while the backup ran) thus never gives two sets.

``keep = N`` keeps the N newest verified sets of the mirror in a member's
root; older verified sets are deleted, and so are failed sets older than the
oldest verified set kept (a failed set inside the window stays, as evidence
of what went wrong). The newest verified set is never deleted; a set whose
manifest cannot be read is never deleted (it is not ours to judge).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from croniter import croniter

from litemirror.backup.choose import choose_member
from litemirror.errors import ConfigError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(what: str, text: str) -> float:
    """Seconds in ``text``: ``"24h"``, ``"15m"``, ``"1h30m"``, ``"2s"``, ``"0.5s"``, ``"7d"``."""
    s = text.strip().replace(" ", "")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s) or total <= 0:
        raise ConfigError(
            f"{what}: {text!r} is not a duration; write a number and a unit (ms, s, m, h, d, w), "
            'e.g. "24h", "15m", "1h30m" or "2s"'
        )
    return total


def check_cron(what: str, expr: str) -> str:
    """``expr`` if it is a valid five-field cron expression (times are UTC)."""
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise ConfigError(
            f"{what}: {expr!r} is not a cron expression; give five fields (minute hour "
            'day-of-month month day-of-week, in UTC), e.g. "0 3 * * *" for 03:00 every day'
        )
    return expr


def next_due(
    *, every_s: float | None, cron: str | None, newest: float | None, since: float
) -> float:
    """When the next scheduled backup is due (unix seconds).

    ``newest``: when the newest set of the mirror was taken (None: no set);
    ``since``: when this member took over the schedule.
    """
    if every_s is not None:
        return since if newest is None else newest + every_s
    if cron is not None:
        base = since if newest is None else newest
        return float(croniter(cron, base).get_next(float))
    raise ValueError("no schedule: neither every nor cron")


def newest_taken(sets: Sequence[dict[str, Any]]) -> float | None:
    """When the newest readable set (verified or failed) was taken."""
    times = [float(s["taken_at"]) for s in sets if s.get("status") in ("verified", "failed")]
    return max(times) if times else None


def newest_verified(sets: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest verified set, or None."""
    good = [s for s in sets if s.get("status") == "verified"]
    return max(good, key=lambda s: (s["taken_at"], s["set"])) if good else None


def choose_taker(at: str, primary: dict[str, Any]) -> tuple[str, str]:
    """(member, reason): who takes the scheduled backup, from ``at`` and the primary's status.

    ``"standby"``: a caught-up failover (then dr) member, else the primary
    (:func:`~litemirror.backup.choose.choose_member`); ``"primary"``: the
    primary; a member's name: that member.
    """
    if at == "standby":
        return choose_member(primary)
    if at == "primary":
        return primary["member"], f"the primary {primary['member']} takes it ([backup] at)"
    return at, f"member {at} takes it ([backup] at)"


def already_taken(sets: Sequence[dict[str, Any]], slot: float) -> dict[str, Any] | None:
    """A readable set taken at or after ``slot`` (the request was served already), or None."""
    done = [
        s
        for s in sets
        if s.get("status") in ("verified", "failed") and float(s["taken_at"]) >= slot
    ]
    return min(done, key=lambda s: (s["taken_at"], s["set"])) if done else None


def to_prune(sets: Sequence[dict[str, Any]], keep: int) -> list[str]:
    """Names of the sets ``keep`` deletes (see the module's docstring); 0 keeps all."""
    if keep <= 0:
        return []
    verified = sorted(
        (s for s in sets if s.get("status") == "verified"),
        key=lambda s: (s["taken_at"], s["set"]),
        reverse=True,
    )
    if not verified:
        return []
    kept = verified[:keep]
    oldest_kept = (kept[-1]["taken_at"], kept[-1]["set"])
    out = [s["set"] for s in verified[keep:]]
    out += [
        s["set"]
        for s in sets
        if s.get("status") == "failed" and (s["taken_at"], s["set"]) < oldest_kept
    ]
    return sorted(out)
