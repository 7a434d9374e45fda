"""``litemirror status``: the mirror at a glance, in the terminal or as JSON.

It shows what the Mirror Monitor page shows (the same member rows, built by
:func:`litemirror.server.ops.web.member_row`): who is primary and whether it
commits, whether automatic failover is possible and the last decision
sentence, every member with role, state, LSN and lag, and the arbiter.
``--watch`` redraws it every second until Ctrl-C.
"""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from litemirror.config import Config
from litemirror.failover.readiness import failover_readiness

ROLE_STYLE = {
    "primary": "bold green",
    "backup": "cyan",
    "dr": "blue",
    "reporting": "magenta",
    "down": "bold red",
}


def _fmt(v: Any) -> str:
    return "—" if v is None else str(v)


def _ms(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.0f} ms" if v < 1000 else f"{v / 1000:.1f} s"


def _rows(status: dict[str, Any], config: Config | None) -> list[dict[str, Any]]:
    if config is None:
        return list(status["members"])
    from litemirror.server.ops.web import member_row

    primary = next((st for st in status["members"] if st.get("role") == "primary"), None)
    by_name = {mb.name: mb for mb in config.members}
    return [
        member_row(by_name[str(st.get("member"))], st, primary, None)
        if st.get("member") in by_name
        else st
        for st in status["members"]
    ]


def _headline(status: dict[str, Any]) -> Text:
    members = status["members"]
    primary = next((st for st in members if st.get("role") == "primary"), None)
    down = [str(st.get("member")) for st in members if st.get("role") == "down"]
    line = Text()
    if primary is None:
        line.append("No primary: the mirror does not accept writes", style="bold red")
    elif not primary.get("writable"):
        line.append(
            f"Primary {primary['member']} is {primary.get('state')}: writes are stopped",
            style="bold red",
        )
    else:
        line.append(
            f"Primary {primary['member']} accepts writes · epoch {primary.get('epoch')}",
            style="bold green",
        )
    fo = (primary or {}).get("failover")
    if status.get("arbiter") is None:
        line.append("\nNo arbiter configured: automatic failover is off.")
    elif fo is not None:
        ready, sentence = failover_readiness(status)
        line.append(f"\n{sentence}", style="" if ready else "yellow")
        if fo.get("decisions"):
            line.append(f"\n“{fo['decisions'][-1]}”", style="italic")
    if down:
        line.append(f"\nDown: {', '.join(down)}", style="bold red")
    return line


def build(status: dict[str, Any], config: Config | None = None) -> RenderableType:
    """The whole screen as one rich renderable."""
    table = Table(title=f"mirror {status['mirror']}", title_justify="left")
    for col in ("member", "kind", "role", "state", "epoch", "LSN", "applied", "lag", "address"):
        table.add_column(col, justify="right" if col in ("epoch", "LSN", "applied") else "left")
    rows = _rows(status, config)
    for row in rows:
        role = str(row.get("role"))
        lag = "—"
        if role not in ("primary", "down") and row.get("lag_records") is not None:
            secs = row.get("lag_seconds")
            lag = f"{row['lag_records']} rec"
            if secs is not None:
                lag += f" · {_ms(float(secs) * 1000)}"
        table.add_row(
            str(row.get("member")),
            str(row.get("kind", "")),
            f"[{ROLE_STYLE.get(role, '')}]{role}[/]",
            str(row.get("state", "")),
            _fmt(row.get("epoch")),
            _fmt(row.get("lsn")),
            _fmt(row.get("applied_lsn", row.get("lsn"))),
            lag,
            str(row.get("address", "")),
        )
    parts: list[RenderableType] = [_headline(status), table]
    arb = status.get("arbiter")
    if arb is not None:
        if arb.get("state") == "down":
            parts.append(
                Text.from_markup(
                    f"arbiter {arb.get('address')}: [bold red]down[/] ({arb.get('error')})"
                )
            )
        else:
            rec = arb.get("record") or {}
            backup = "active" if rec.get("backup_active") else "inactive"
            parts.append(
                Text(
                    f"arbiter {arb.get('address')}: epoch {rec.get('epoch')} held by "
                    f"{rec.get('holder')} (backup {backup});"
                    f" in contact with {', '.join(arb.get('in_contact') or []) or 'nobody'}"
                )
            )
    if any(mb.get("redacted") for mb in status["members"]):
        parts.append(
            Text(
                "Some members require a login (auth.require) and showed only role and "
                "state: run with --user NAME (or LITEMIRROR_USER) for the full status.",
                style="yellow",
            )
        )
    for mb in status["members"]:
        if mb.get("error"):
            parts.append(Text.from_markup(f"[red]{mb['member']}[/]: {mb['error']}"))
        elif mb.get("reason"):
            parts.append(Text.from_markup(f"[bold]{mb['member']}[/]: ") + Text(mb["reason"]))
        for rep in mb.get("replicas") or []:
            rl = rep.get("lag") or {}
            parts.append(
                Text(
                    f"  → {rep['member']} ({rep['kind']}): {rep['state']}, applied LSN "
                    f"{rep['applied_lsn']}, lag {rl.get('records')} records / "
                    f"{rl.get('bytes')} bytes / {rl.get('seconds')} s"
                )
            )
    return Group(*parts)


def render(status: dict[str, Any], console: Console, config: Config | None = None) -> None:
    console.print(build(status, config))


def print_status(status: dict[str, Any], as_json: bool, config: Config | None = None) -> None:
    if as_json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        render(status, Console(), config)


def watch(config: Config, interval: float = 1.0, console: Console | None = None) -> int:
    """Redraw the status every ``interval`` seconds until Ctrl-C; returns the exit code."""
    from .control import mirror_status

    console = console or Console()
    try:
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                status = mirror_status(config)
                when = time.strftime("%H:%M:%S")
                stamp = Text(
                    f"{when} · refreshing every {interval:g}s · Ctrl-C to stop", style="dim"
                )
                live.update(Group(build(status, config), stamp), refresh=True)
                time.sleep(interval)
    except KeyboardInterrupt:
        return 0
