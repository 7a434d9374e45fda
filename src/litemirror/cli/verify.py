"""``litemirror verify``: prove that every member holds the same databases.

For each database the primary's copy is checksummed (per table, from one
read snapshot, so writers are not blocked) together with the LSN of its
last change. Every other reachable member is asked for the same database
once it has applied that LSN; the two are compared only when the member's
copy is at exactly the same LSN. A database that keeps changing is retried
a few times; if no common LSN is found, it is reported as not compared
(exit status 1 too: nothing is proven).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from litemirror import errors
from litemirror.config import Config, Member

from .control import admin, find_primary, member_status

ATTEMPTS = 20


def _checksum(cfg: Config, mb: Member, db: str, min_lsn: int) -> dict[str, Any]:
    return admin(cfg, "checksum", {"name": db, "min_lsn": min_lsn}, member=mb.name)


def verify(cfg: Config, console: Console | None = None) -> int:
    con = console or Console()
    primary = find_primary(cfg)
    dbs = admin(cfg, "databases", {}, member=primary.name)["databases"]
    others = [mb for mb in cfg.members if mb.name != primary.name]
    up = [mb for mb in others if member_status(mb).get("role") != "down"]
    down = [mb.name for mb in others if mb not in up]
    table = Table(
        title=f"verify mirror {cfg.mirror.name} (primary {primary.name})", title_justify="left"
    )
    table.add_column("database")
    table.add_column("LSN", justify="right")
    for mb in up:
        table.add_column(mb.name)
    bad = 0
    for db in dbs:
        row: list[str] = []
        lsn = 0
        results: dict[str, str] = {}
        for _ in range(ATTEMPTS):
            ref = _checksum(cfg, primary, db, 0)
            lsn = int(ref["lsn"])
            results = {}
            retry = False
            for mb in up:
                try:
                    got = _checksum(cfg, mb, db, lsn)
                except errors.Error as exc:
                    results[mb.name] = f"[red]error: {exc.message}[/]"
                    continue
                if int(got["lsn"]) != lsn:
                    retry = True
                    break
                diff = sorted(
                    t
                    for t in set(ref["tables"]) | set(got["tables"])
                    if ref["tables"].get(t) != got["tables"].get(t)
                )
                results[mb.name] = (
                    "[green]same[/]"
                    if not diff
                    else "[red]DIFFERENT: " + ", ".join(diff[:5]) + "[/]"
                )
            if not retry:
                break
        else:
            results = {mb.name: "[yellow]busy: no common LSN[/]" for mb in up}
        row = [db, str(lsn)] + [results.get(mb.name, "") for mb in up]
        if any("same" not in v for v in results.values()):
            bad += 1
        table.add_row(*row)
    con.print(table)
    if down:
        con.print(f"[yellow]not reachable, not compared:[/] {', '.join(down)}")
    if bad:
        con.print(f"[red]{bad} database(s) differ or could not be compared[/]")
        return 1
    con.print(f"[green]all {len(dbs)} database(s) identical on {len(up) + 1} member(s)[/]")
    return 0
