"""``litemirror user add|remove|passwd|list``: the mirror's users and their roles.

Changes go to the primary, which writes them to the mirrored system
database, so every member knows them (and keeps knowing them after a
failover). The new password comes from ``--password-stdin`` (one line),
the ``LITEMIRROR_NEW_PASSWORD`` environment variable, or a prompt (asked
twice) on a terminal; ``--no-password`` makes a user who logs in with a
client certificate only. The command itself logs in like every other
(``--user``, ``LITEMIRROR_USER``/``LITEMIRROR_PASSWORD``); while no admin
user exists, it may run without a login on a member's host (see
docs/security.md, "Bootstrap").
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from litemirror import errors

ROLES = ("read", "write", "admin")


def login_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--user`` to a subcommand that talks to members."""
    parser.add_argument(
        "--user",
        metavar="NAME",
        help="log in as NAME (default: LITEMIRROR_USER); the password comes from "
        "LITEMIRROR_PASSWORD or a prompt",
    )


def url_with_login(url: str) -> str:
    """``url`` with the command line's login (``--user``, LITEMIRROR_USER) if it names none."""
    from urllib.parse import quote

    from .control import login

    scheme, sep, rest = url.partition("://")
    netloc = rest.split("/", 1)[0]
    creds = login() if sep and "@" not in netloc else None
    if creds is None:
        return url
    user, password = creds
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password is not None else "")
    return f"{scheme}://{auth}@{rest}"


def _new_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if not password:
            raise errors.ConfigError("--password-stdin: standard input held no password")
        return password
    env = os.environ.get("LITEMIRROR_NEW_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        raise errors.ConfigError(
            "no new password: give it with --password-stdin or LITEMIRROR_NEW_PASSWORD "
            "(or run on a terminal to be asked)"
        )
    first = getpass.getpass(f"new password of user {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise errors.ConfigError("the two passwords differ; nothing was changed")
    return first


def _admin(args: argparse.Namespace, action: str, body: dict[str, Any]) -> dict[str, Any]:
    from .context import load
    from .control import admin

    return admin(load(args.config), action, body, member=getattr(args, "member", None))


def cmd_add(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "role": args.role}
    if args.no_password:
        body["no_password"] = True
    else:
        body["password"] = _new_password(args)
    info = _admin(args, "user_add", body)
    how = "a client certificate" if args.no_password else "a password"
    print(f"user {info['user']} added with the {info['role']} role; logs in with {how}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    info = _admin(args, "user_remove", {"name": args.name})
    print(f"user {info['user']} removed")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    info = _admin(args, "user_passwd", {"name": args.name, "password": _new_password(args)})
    print(f"password of user {info['user']} changed")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    users = _admin(args, "user_list", {})["users"]
    if args.json:
        import json

        print(json.dumps(users, indent=2))
        return 0
    table = Table(title="users", title_justify="left")
    for col in ("name", "role", "logs in with", "created", "changed"):
        table.add_column(col)
    for u in users:
        how = "password or certificate" if u["password"] else "certificate only"
        table.add_row(u["name"], u["role"], how, u["created_at"], u["changed_at"])
    Console().print(table)
    if not users:
        print("no users yet: add an admin with `litemirror user add NAME --role admin`")
    return 0


def add_parser(sub: Any) -> None:
    users = sub.add_parser("user", help="users and roles").add_subparsers(
        dest="usercmd", required=True
    )

    def common(s: argparse.ArgumentParser) -> None:
        s.add_argument("--config", required=True)
        login_option(s)

    def new_password(s: argparse.ArgumentParser | Any) -> None:
        s.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the new password from the first line of standard input",
        )

    s = users.add_parser("add", help="add a user with a role (read, write or admin)")
    s.add_argument("name")
    s.add_argument("--role", required=True, choices=ROLES)
    how = s.add_mutually_exclusive_group()
    new_password(how)
    how.add_argument(
        "--no-password",
        action="store_true",
        help="no password: the user logs in with a client certificate (CN = NAME) only",
    )
    common(s)
    s.set_defaults(func=cmd_add)

    s = users.add_parser("remove", help="remove a user")
    s.add_argument("name")
    common(s)
    s.set_defaults(func=cmd_remove)

    s = users.add_parser("passwd", help="set a user's password")
    s.add_argument("name")
    new_password(s)
    common(s)
    s.set_defaults(func=cmd_passwd)

    s = users.add_parser("list", help="list the users and their roles")
    s.add_argument("--json", action="store_true")
    s.add_argument("--member", help="ask this member (default: the primary)")
    common(s)
    s.set_defaults(func=cmd_list)
