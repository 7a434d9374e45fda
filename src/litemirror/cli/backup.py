"""``litemirror backup`` and ``litemirror backup list``.

``backup`` asks one member to take a backup of its own databases (the admin
action ``backup``): by default a caught-up failover or dr member, else the
primary (:func:`litemirror.backup.choose.choose_member`); ``--member`` names
one. The member does the work; the terminal shows a spinner while it runs
and one line with the outcome. Exit 0: verified; 1: the set was written but
failed verification (or the backup could not be taken).

``backup list`` asks a member (``--member``, default the primary) for the
sets under its backup root (the admin action ``backup_list``).

``backup verify`` asks a member for a restore drill of one of its sets (the
admin action ``backup_verify``, :mod:`litemirror.server.storage.drills`): exit
0 when the set restored and checked, 1 when the drill failed.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from litemirror.backup.choose import choose_member
from litemirror.client.control import admin, member_status
from litemirror.config import Config
from litemirror.errors import ConfigError, UnavailableError

from .context import load
from .control import login
from .users import login_option


def _pick(config: Config, member: str | None) -> tuple[str, str]:
    if member:
        config.member(member)  # a clear error for an unknown name
        return member, f"member {member} takes it (--member)"
    creds = login()
    for mb in config.members:
        st = member_status(mb, credentials=creds)
        if st.get("role") == "primary":
            return choose_member(st)
    raise UnavailableError("no member of the mirror answers as primary; give --member")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


def cmd_backup(args: argparse.Namespace) -> int:
    if not args.config:
        raise ConfigError("backup: --config is required (the mirror's config file)")
    config = load(args.config)
    console = Console(stderr=True)
    member, why = _pick(config, args.member)
    console.print(f"backup: {why}")
    call: dict[str, Any] = {"dbs": args.db or None, "to": args.to}
    with console.status(f"member {member} is copying and verifying ..."):
        out = admin(config, "backup", call, member, credentials=login())
    dbs = ", ".join(f"{d['name']}@{d['lsn']}" for d in out["databases"])
    line = (
        f"{out['status']}: {out['path']} ({dbs}; {_size(out['stored_bytes'])} stored, "
        f"{out['finished_at'] - out['taken_at']:.1f} s)"
    )
    if out["status"] != "verified":
        print(f"FAILED {line}: {out['problem']}")
        return 1
    print(line)
    return 0


def cmd_backup_list(args: argparse.Namespace) -> int:
    config = load(args.config)
    out = admin(config, "backup_list", {"to": args.to}, args.member, credentials=login())
    table = Table(title=f"backup sets in {out['dir']}")
    for col in ("taken (UTC)", "member", "LSN", "databases", "status", "size"):
        table.add_column(col)
    for s in out["sets"]:
        if s["status"] == "unreadable":
            table.add_row(s["set"], "", "", "", "unreadable", "")
            continue
        taken = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s["taken_at"]))
        dbs = ", ".join(d["name"] for d in s["databases"])
        table.add_row(taken, s["member"], str(s["lsn"]), dbs, s["status"], _size(s["stored_bytes"]))
    Console().print(table)
    return 0


def cmd_backup_verify(args: argparse.Namespace) -> int:
    config = load(args.config)
    console = Console(stderr=True)
    who = f"member {args.member}" if args.member else "the primary"
    with console.status(f"{who} restores and checks the backup set ..."):
        out = admin(config, "backup_verify", {"set": args.set}, args.member, credentials=login())
    print(f"{out['message']} ({out['seconds']:.1f} s, member {out['member']})")
    return 0 if out["outcome"] == "ok" else 1


def add_parser(sub: Any) -> None:
    s = sub.add_parser("backup", help="take a verified backup of the mirror's databases")
    s.add_argument("--config")
    s.add_argument("--db", action="append", metavar="NAME", help="a database (repeat); default all")
    s.add_argument("--to", metavar="DIR", help="a directory inside the member's [backup] dir")
    s.add_argument("--member", metavar="M", help="default: a caught-up standby, else the primary")
    login_option(s)
    s.set_defaults(func=cmd_backup)
    sets = s.add_subparsers(dest="backup_command", metavar="{list,verify}")
    ls = sets.add_parser("list", help="list the backup sets a member holds")
    ls.add_argument("--config", required=True)
    ls.add_argument("--member", metavar="M", help="default: the primary")
    ls.add_argument("--to", metavar="DIR", help="a directory inside the member's [backup] dir")
    login_option(ls)
    ls.set_defaults(func=cmd_backup_list)
    vf = sets.add_parser("verify", help="restore drill: restore a backup set and check it")
    vf.add_argument("--config", required=True)
    vf.add_argument("--member", metavar="M", help="the member holding the set; default: primary")
    which = vf.add_mutually_exclusive_group()
    which.add_argument(
        "--latest", action="store_true", help="the member's newest verified set (the default)"
    )
    which.add_argument("--set", metavar="DIR", help="a set under the member's [backup] dir")
    login_option(vf)
    vf.set_defaults(func=cmd_backup_verify)
