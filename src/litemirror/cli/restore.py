"""``litemirror restore``: a database from a backup set and the journal archive.

Offline: it reads files only (no member is contacted) and writes one plain
SQLite file. See :mod:`litemirror.backup.restore` for the order of checks.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cmd_restore(args: argparse.Namespace) -> int:
    from litemirror.backup.keyfile import load_keys
    from litemirror.backup.restore import ByLsn, ByTime, Latest, parse_time, restore

    target = (
        ByLsn(args.lsn)
        if args.lsn is not None
        else ByTime(parse_time(args.at))
        if args.at
        else Latest()
    )
    outcome = restore(
        Path(args.from_),
        args.db,
        Path(args.out),
        archive=Path(args.archive) if args.archive else None,
        target=target,
        force=args.force,
        keys=load_keys([Path(k) for k in args.key_file]),
    )
    print(outcome.sentence())
    return 0


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "restore",
        help="restore a database from a backup set (+ journal archive) to an LSN or a time",
    )
    s.add_argument(
        "--from", dest="from_", required=True, metavar="SET", help="backup set directory"
    )
    s.add_argument("--db", required=True, metavar="NAME", help="database to restore")
    s.add_argument("--out", required=True, metavar="FILE", help="SQLite file to write")
    s.add_argument(
        "--archive",
        metavar="DIR",
        help="journal archive: the [archive] dir, its <mirror> directory or one member's "
        "(without it, the backup copy itself is restored)",
    )
    when = s.add_mutually_exclusive_group()
    when.add_argument("--lsn", type=int, metavar="N", help="the state at LSN N")
    when.add_argument(
        "--at",
        metavar="TIME",
        help="the state with every commit up to TIME, ISO 8601 with a zone "
        "(2026-12-06T14:03:00Z); default: everything the archive holds",
    )
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    s.add_argument(
        "--key-file",
        action="append",
        default=[],
        metavar="FILE",
        help="key of an encrypted backup or archive (repeat for several keys: each file is "
        "opened with the key of the id its header names)",
    )
    s.set_defaults(func=cmd_restore)
