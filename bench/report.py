"""Turn bench results into the ratio table, the Markdown page and the quick summary line."""

from __future__ import annotations

import math
from typing import Any

from .failover import markdown as failover_markdown
from .harness import CellResult
from .systems import ACCOUNTS, BRANCHES, MIRROR

PG_ON = "postgresql (sync on)"
#: The like-for-like pair: a commit waits for the second server's disk in both.
RATIO_NUM, RATIO_DEN = MIRROR, PG_ON


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")


def ratios(cells: list[CellResult]) -> list[dict[str, Any]]:
    """litemirror primary+backup (durable) / PostgreSQL (sync on), every cell both ran."""
    out = []
    for lm in cells:
        if lm.system != RATIO_NUM:
            continue
        pg = next(
            (
                c
                for c in cells
                if c.system == RATIO_DEN and c.workload == lm.workload and c.clients == lm.clients
            ),
            None,
        )
        if pg is None:
            continue
        out.append(
            {
                "workload": lm.workload,
                "clients": lm.clients,
                "tps": round(_ratio(lm.tps, pg.tps), 3),
                "p50": round(_ratio(lm.p50_ms, pg.p50_ms), 3),
                "p95": round(_ratio(lm.p95_ms, pg.p95_ms), 3),
                "p99": round(_ratio(lm.p99_ms, pg.p99_ms), 3),
            }
        )
    return out


def summary_line(rts: list[dict[str, Any]], failover: dict[str, Any]) -> str:
    def pick(clients: int, key: str) -> float:
        r = next((r for r in rts if r["workload"] == "insert" and r["clients"] == clients), None)
        return float(r[key]) if r else float("nan")

    lm = failover.get("litemirror")
    rto = float(lm["rto_s"]["p99"]) if lm else float("nan")
    return (
        f"ratio_tps_16c_insert={pick(16, 'tps'):.2f} "
        f"ratio_p50_1c_insert={pick(1, 'p50'):.2f} rto_p99_s={rto:.1f}"
    )


def print_cell(c: CellResult) -> None:
    print(
        f"{c.system:38s} {c.workload:12s} {c.clients:3d} clients  {c.tps:9.1f} TPS  "
        f"p50 {c.p50_ms:7.2f} ms  p99 {c.p99_ms:7.2f} ms  errors {c.errors}",
        flush=True,
    )


def _ms(v: float) -> str:
    # In-process SQLite reads take microseconds: keep them from printing 0.00.
    return f"{v:.3f}" if v < 0.1 else f"{v:.2f}"


def _cells_table(cells: list[CellResult]) -> str:
    lines = [
        "| workload | clients | system | TPS | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        lines.append(
            f"| {c.workload} | {c.clients} | {c.system} | {c.tps:,.0f} | "
            f"{_ms(c.p50_ms)} | {_ms(c.p95_ms)} | {_ms(c.p99_ms)} | {c.errors} |"
        )
    return "\n".join(lines)


def _ratio_table(rts: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | clients | TPS ratio (higher is better) | p50 ratio | p99 ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rts:
        lines.append(
            f"| {r['workload']} | {r['clients']} | {r['tps']:.2f} | {r['p50']:.2f} | "
            f"{r['p99']:.2f} |"
        )
    return "\n".join(lines)


def markdown(
    meta: dict[str, Any],
    cells: list[CellResult],
    rts: list[dict[str, Any]],
    extra: dict[str, Any],
) -> str:
    md = [
        f"Measured {meta['date']} on {meta['cores']} cores ({meta['machine']}), "
        f"Python {meta['python']}, SQLite {meta['sqlite']}, litemirror {meta['litemirror']}, "
        f"PostgreSQL {meta['postgresql'] or '(not run)'} with psycopg {meta['psycopg']}; "
        f"{meta['duration_s']:g} s per cell{' (quick mode)' if meta['quick'] else ''}; "
        f"the whole run took {meta['elapsed_s'] / 60:.1f} min. The machine was shared with "
        "other work while it ran: treat differences of a few tens of percent as noise.",
        "",
        "All servers on loopback, data on the same disk, started by the bench. "
        "PostgreSQL: primary + one synchronous standby (pg_basebackup), `fsync=on`, otherwise "
        "default settings. litemirror: `ack = durable` (a commit is acknowledged once the "
        "journal record is fsynced on the primary and on the backup); primary+backup is two "
        "failover members, +arbiter adds the arbiter (automatic failover on); clients use a "
        "host-list URL naming both members. Extra rows: litemirror with one member (journal "
        "fsync only) and in-process SQLite (WAL, `synchronous=FULL`). tpcb: 10 statements "
        f"(BEGIN, transfer between two of {ACCOUNTS:,} accounts with read-backs, teller and "
        f"branch of {BRANCHES} branches, two history rows, COMMIT). blob: 1 MB incompressible "
        "BLOB per INSERT. Cells are interleaved: for each workload and client count every "
        "system runs in turn.",
    ]
    if rts:
        md += [
            "",
            f"{RATIO_NUM} / {RATIO_DEN}, same run; TPS above 1 and latency below 1 favour "
            "litemirror:",
            "",
            _ratio_table(rts),
        ]
    md += ["", _cells_table(cells)]
    if "many_databases" in extra:
        m = extra["many_databases"]
        md += [
            "",
            f"{m['databases']} databases in one member, {m['clients']} clients: "
            f"{m['tps']:,.0f} TPS, "
            f"{m.get('threads')} threads, {m.get('open_files')} open files, RSS {m.get('vmrss')}.",
        ]
    fo = extra.get("failover")
    if fo:
        md += ["", "### Failover", "", _failover_intro(fo), "", failover_markdown(fo)]
    for w in extra.get("warnings", []):
        md += ["", f"Warning: {w}"]
    return "\n".join(md) + "\n"


def _failover_intro(fo: dict[str, Any]) -> str:
    text = (
        "One writer (1 client, autocommit single-row INSERTs, host-list URL / libpq host list "
        "with `target_session_attrs=read-write`, reconnecting after every error) runs while "
        "the bench kill -9s the primary; the figure is the time from the kill to the first "
        "write acknowledged by the other server. Every acknowledged row is then looked up on "
        "the new primary. With 20 trials p99 is the largest value (nearest rank)."
    )
    lm = fo.get("litemirror")
    if lm:
        c = lm["config"]
        text += (
            f" litemirror runs its defaults (`qos_timeout_ms = {c['qos_timeout_ms']}`, "
            f"`heartbeat_ms = {c['heartbeat_ms']}`); the driver retries with `retry=5`; the "
            "killed member is restarted, rejoins as backup and is the next trial's primary."
        )
    pg = fo.get("postgresql")
    if pg:
        text += (
            " PostgreSQL: the bench kills the primary's whole process group and at once calls "
            "`pg_promote()` (the SQL form of `pg_ctl promote`) on an open connection to the "
            "standby, so failure detection and decision, which an HA manager adds, are not "
            "counted: a lower bound. The standby has `synchronous_standby_names = ''` (it "
            "commits alone once promoted, like litemirror's new primary) and "
            "`wal_retrieve_retry_interval = 50ms` (with the default 5 s, a promote that races "
            "the walreceiver noticing the dead primary waits 5 s; seen in 3 of 8 trials). The "
            "dead server is rebuilt with pg_basebackup as the new standby between trials."
        )
    return text
