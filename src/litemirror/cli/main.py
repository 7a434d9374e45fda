"""``litemirror`` — one entry point, one subcommand per job.

Exit codes: 0 success, 1 the job ran and found a problem (e.g. verify
differences), 2 bad usage or configuration, 3 the mirror could not be
reached.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from litemirror import __version__, errors

from .context import load


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from litemirror.server.node.wiring import run_member

    _setup_logging(args.log_level)
    cfg = load(args.config)
    cfg.member(args.member)  # fail early on a wrong name
    return asyncio.run(run_member(cfg, args.member))


def cmd_status(args: argparse.Namespace) -> int:
    from .control import mirror_status
    from .status import print_status, watch

    cfg = load(args.config)
    if args.watch:
        if args.json:
            raise errors.ConfigError("status: --watch and --json cannot be used together")
        return watch(cfg, args.interval)
    status = mirror_status(cfg)
    print_status(status, args.json, cfg)
    return 0 if any(mb.get("role") != "down" for mb in status["members"]) else 3


def cmd_shell(args: argparse.Namespace) -> int:
    from .shell import run_shell
    from .users import url_with_login

    return run_shell(url_with_login(args.url))


def cmd_db_add(args: argparse.Namespace) -> int:
    from .control import admin, find_primary
    from .progress import follow_to_members

    cfg = load(args.config)
    # Sent as given: the member reads it on its own host, relative to its
    # server.import_dir (the only directory it imports from).
    frm = args.from_ or None
    primary = args.member or find_primary(cfg).name
    info = admin(cfg, "db_add", {"name": args.name, "from": frm}, member=primary)
    print(f"database {info['database']} added at LSN {info['lsn']} on {primary}")
    if args.no_wait:
        return 0
    ok = follow_to_members(cfg, primary, int(info["lsn"]), timeout=args.timeout)
    return 0 if ok else 1


def cmd_journal_switch(args: argparse.Namespace) -> int:
    from .control import admin

    info = admin(load(args.config), "journal_switch", {}, member=args.member)
    print(f"journal switched to segment {info['segment']}")
    return 0


def cmd_switchover(args: argparse.Namespace) -> int:
    from .control import admin

    info = admin(load(args.config), "switchover", {"to": args.to, "timeout_s": args.timeout})
    print(
        f"switched over from {info['from']} to {info['to']} at epoch {info['epoch']}; "
        f"writes paused {info['pause_ms']:.0f} ms"
    )
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from .control import admin

    config = load(args.config)
    if args.force:
        check = {"to_primary": True, "force": True, "dry_run": True}
        info = admin(config, "promote", check, member=args.member)
        print(f"forced promote of member {args.member}: {info['loss']}")
        if not args.yes:
            if not sys.stdin.isatty():
                print(
                    "litemirror promote: confirm with --yes (stdin is not a terminal)",
                    file=sys.stderr,
                )
                return 2
            answer = input(f"type the member name ({args.member}) to promote it: ").strip()
            if answer != args.member:
                print("not promoted")
                return 1
        go = {"to_primary": True, "force": True, "confirm": args.member}
        info = admin(config, "promote", go, member=args.member)
    else:
        info = admin(config, "promote", {"to_primary": True}, member=args.member)
    for sentence in info.get("decisions") or [info["reason"]]:
        print(f"member {info['member']}: {sentence}")
    print(f"member {info['member']} is now {info['state']}")
    return 0 if info["state"] in ("primary", "primary alone") else 1


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify

    return verify(load(args.config))


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(rows=args.rows, keep=args.keep)


def cmd_arbiter(args: argparse.Namespace) -> int:
    from pathlib import Path

    from litemirror.server.arbiter.service import run_arbiter

    _setup_logging(args.log_level)
    config = None
    if args.config is not None:
        try:
            config = load(args.config)
        except errors.ConfigError as exc:
            print(f"litemirror: {exc.message}", file=sys.stderr)
            return 2
    elif args.listen is None:
        print("litemirror arbiter: give --listen HOST:PORT or --config FILE", file=sys.stderr)
        return 2
    return asyncio.run(
        run_arbiter(args.listen, Path(args.data_dir), args.mirror, args.qos_timeout_ms, config)
    )


def build_parser() -> argparse.ArgumentParser:
    from .users import login_option

    p = argparse.ArgumentParser(
        prog="litemirror", description="High-availability mirroring for SQLite."
    )
    p.add_argument("--version", action="version", version=f"litemirror {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run a member of the mirror")
    s.add_argument("--config", required=True)
    s.add_argument("--member", required=True)
    s.add_argument("--log-level", default=os.environ.get("LITEMIRROR_LOG_LEVEL", "info"))
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("status", help="show every member of the mirror")
    s.add_argument("--config", required=True)
    s.add_argument("--json", action="store_true")
    s.add_argument("--watch", action="store_true", help="redraw every second until Ctrl-C")
    s.add_argument("--interval", type=float, default=1.0, help="seconds between redraws")
    login_option(s)
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("shell", help="SQL prompt on a member")
    s.add_argument("url", help="litemirror://host:port,.../database")
    login_option(s)
    s.set_defaults(func=cmd_shell)

    db = sub.add_parser("db", help="database management").add_subparsers(
        dest="dbcmd", required=True
    )
    s = db.add_parser("add", help="add a database to the mirror (optionally from a file)")
    s.add_argument("name")
    s.add_argument(
        "--from",
        dest="from_",
        metavar="FILE",
        help="SQLite file on the member's host, inside its server.import_dir (absolute, "
        "or relative to that directory)",
    )
    s.add_argument("--config", required=True)
    s.add_argument("--member", help="member to send it to (default: the primary)")
    s.add_argument(
        "--no-wait",
        action="store_true",
        help="do not wait for (and show) the copy reaching the other members",
    )
    s.add_argument("--timeout", type=float, default=600.0)
    login_option(s)
    s.set_defaults(func=cmd_db_add)

    j = sub.add_parser("journal", help="journal management").add_subparsers(
        dest="jcmd", required=True
    )
    s = j.add_parser("switch", help="close the current journal segment and open a new one")
    s.add_argument("--config", required=True)
    s.add_argument("--member")
    login_option(s)
    s.set_defaults(func=cmd_journal_switch)

    s = sub.add_parser("switchover", help="planned switchover to the backup, no data lost")
    s.add_argument("--to", required=True, metavar="MEMBER")
    s.add_argument("--config", required=True)
    s.add_argument("--timeout", type=float, default=30.0)
    login_option(s)
    s.set_defaults(func=cmd_switchover)

    s = sub.add_parser(
        "promote",
        help="make a DR member primary (no failover member left); --force: manual failover",
    )
    s.add_argument("--member", required=True)
    s.add_argument("--config", required=True)
    s.add_argument(
        "--force",
        action="store_true",
        help="make this member primary although the primary is not known to be safe to "
        "replace (no arbiter, or not the active backup); says what may be lost first",
    )
    s.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    login_option(s)
    s.set_defaults(func=cmd_promote)

    s = sub.add_parser("verify", help="compare every database on every member")
    s.add_argument("--config", required=True)
    login_option(s)
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("demo", help="start a local mirror, run a workload, show what happens")
    s.add_argument("--rows", type=int, default=2000)
    s.add_argument("--keep", action="store_true", help="keep the demo directory")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("arbiter", help="run the arbiter of a mirror (on a third host)")
    s.add_argument(
        "--config",
        metavar="FILE",
        help="the mirror's config file: its mirror.arbiter, name, QoS timeout and [tls] apply",
    )
    s.add_argument("--listen", metavar="HOST:PORT", help="default: mirror.arbiter of --config")
    s.add_argument("--data-dir", required=True, metavar="DIR")
    s.add_argument("--mirror", help="mirror name (default: learned from the first member)")
    s.add_argument("--qos-timeout-ms", type=int, default=None, help="default 2000")
    s.add_argument("--log-level", default=os.environ.get("LITEMIRROR_LOG_LEVEL", "info"))
    s.set_defaults(func=cmd_arbiter)

    from .certs import add_parser as add_certs_parser

    add_certs_parser(sub)
    from .events import add_parser as add_events_parser

    add_events_parser(sub)
    from .users import add_parser as add_users_parser

    add_users_parser(sub)
    from .diverged import add_parser as add_diverged_parser

    add_diverged_parser(sub)
    from .backup import add_parser as add_backup_parser

    add_backup_parser(sub)
    from .restore import add_parser as add_restore_parser

    add_restore_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "user", None):
        from .control import use_user

        use_user(args.user)
    try:
        rc: int = args.func(args)
        return rc
    except errors.ConfigError as exc:
        print(f"litemirror: configuration error: {exc.message}", file=sys.stderr)
        return 2
    except (errors.UnavailableError, errors.ConnectionLostError) as exc:
        print(f"litemirror: {exc.message}", file=sys.stderr)
        return 3
    except errors.Error as exc:
        print(f"litemirror: {type(exc).__name__}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
