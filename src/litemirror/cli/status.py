"""``litemirror status``: the mirror at a glance, in the terminal or as JSON."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

ROLE_STYLE = {
    "primary": "bold green",
    "backup": "cyan",
    "dr": "blue",
    "reporting": "magenta",
    "down": "bold red",
}


def render(status: dict[str, Any], console: Console) -> None:
    table = Table(title=f"mirror {status['mirror']}", title_justify="left")
    for col in ("member", "kind", "role", "state", "epoch", "LSN", "databases", "address"):
        table.add_column(col)
    for mb in status["members"]:
        role = str(mb.get("role"))
        table.add_row(
            str(mb.get("member")),
            str(mb.get("kind", "")),
            f"[{ROLE_STYLE.get(role, '')}]{role}[/]",
            str(mb.get("state", "")),
            str(mb.get("epoch", "")),
            str(mb.get("lsn", "")),
            str(mb.get("databases", "")),
            str(mb.get("address", "")),
        )
    console.print(table)
    arb = status.get("arbiter")
    if arb is not None:
        if arb.get("state") == "down":
            console.print(f"arbiter {arb.get('address')}: [bold red]down[/] ({arb.get('error')})")
        else:
            rec = arb.get("record") or {}
            backup = "active" if rec.get("backup_active") else "inactive"
            console.print(
                f"arbiter {arb.get('address')}: epoch {rec.get('epoch')} held by "
                f"{rec.get('holder')} (backup {backup});"
                f" in contact with {', '.join(arb.get('in_contact') or []) or 'nobody'}"
            )
    for mb in status["members"]:
        if mb.get("error"):
            console.print(f"[red]{mb['member']}[/]: {mb['error']}")
        elif mb.get("reason"):
            console.print(f"[bold]{mb['member']}[/]: {mb['reason']}")
        for rep in mb.get("replicas") or []:
            lag = rep.get("lag") or {}
            console.print(
                f"  → {rep['member']} ({rep['kind']}): {rep['state']}, applied LSN "
                f"{rep['applied_lsn']}, lag {lag.get('records')} records / "
                f"{lag.get('bytes')} bytes / {lag.get('seconds')} s"
            )


def print_status(status: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        render(status, Console())
