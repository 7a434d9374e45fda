"""Restore drills: what a drill's comparisons mean (pure: no I/O, no clock).

The shell (:mod:`litemirror.server.storage.drills`) restores, reads and
times; these functions only compare what it read and put the outcome into
words.
"""

from __future__ import annotations


def table_differences(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """The tables whose checksums differ, are missing, or are extra, as short phrases."""
    out: list[str] = []
    for name in sorted(expected.keys() | actual.keys()):
        if name not in actual:
            out.append(f"{name} missing")
        elif name not in expected:
            out.append(f"{name} not expected")
        elif expected[name] != actual[name]:
            out.append(f"{name} differs")
    return out


def replay_skip_reason(db: str, restored_lsn: int, member_lsn: int | None) -> str | None:
    """Why the replayed database cannot be compared with the member's, or None if it can.

    Both files are at the LSN of the last record of ``db`` they hold; only at
    the same LSN must they be equal (a member ahead holds commits the archive
    does not have yet, a member behind has not applied all of them).
    """
    if member_lsn is None:
        return f"this member no longer holds database {db}"
    if member_lsn > restored_lsn:
        return (
            f"this member's {db} is at LSN {member_lsn}, the archive reaches LSN "
            f"{restored_lsn} of it (later commits are not archived yet)"
        )
    if member_lsn < restored_lsn:
        return f"this member's {db} is at LSN {member_lsn}, behind the archive's LSN {restored_lsn}"
    return None


def sentence(
    set_name: str, problems: list[str], skipped: list[str], dbs: int, compared: int = 0
) -> str:
    """The one line a drill is told by (event, CLI)."""
    if problems:
        return f"restore drill of backup {set_name} FAILED: " + "; ".join(problems)
    line = f"restore drill of backup {set_name} ok: {dbs} database(s) restored and checked"
    if compared:
        line += f", {compared} equal to this member's after the archive replay"
    if skipped:
        line += "; not compared after archive replay: " + "; ".join(skipped)
    return line
