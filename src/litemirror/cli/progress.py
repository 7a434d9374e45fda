"""Progress of a database reaching every member, shown with rich progress bars."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from litemirror.config import Config

from .control import login, member_status


def _applied(st: dict[str, Any]) -> int:
    if st.get("role") == "primary":
        return int(st.get("lsn") or 0)
    return int((st.get("replication") or {}).get("applied_lsn") or 0)


def follow_to_members(
    cfg: Config, primary: str, lsn: int, *, timeout: float = 600.0, console: Console | None = None
) -> bool:
    """Show each member catching up to ``lsn`` (a new database's copy); True if all did."""
    others = [mb for mb in cfg.members if mb.name != primary]
    if not others:
        return True
    con = console or Console()
    tasks: dict[str, TaskID] = {}
    done: set[str] = set()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[what]}"),
        TimeElapsedColumn(),
        console=con,
        transient=False,
    ) as progress:
        for mb in others:
            tasks[mb.name] = progress.add_task(f"member {mb.name}", total=lsn, what="")
        deadline = time.monotonic() + timeout
        while len(done) < len(others) and time.monotonic() < deadline:
            for mb in others:
                if mb.name in done:
                    continue
                st = member_status(mb, 1.0, credentials=login())
                if st.get("role") == "down":
                    progress.update(tasks[mb.name], what="down")
                    done.add(mb.name)
                    continue
                rep = st.get("replication") or {}
                seeding = rep.get("seeding")
                what = str(rep.get("state", ""))
                if seeding:
                    what = f"receiving a copy ({seeding['done']}/{len(seeding['databases'])} db)"
                applied = _applied(st)
                progress.update(tasks[mb.name], completed=min(applied, lsn), what=what)
                if applied >= lsn:
                    progress.update(tasks[mb.name], what="has it")
                    done.add(mb.name)
            time.sleep(0.2)
    return len(done) == len(others)
