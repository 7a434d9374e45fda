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
    for mb in status["members"]:
        if mb.get("error"):
            console.print(f"[red]{mb['member']}[/]: {mb['error']}")


def print_status(status: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        render(status, Console())
