"""``litemirror events``: the event logs of every member, merged by time; ``--follow`` tails them.

Where each member's events come from (``--source auto``, the default):

* a member with ``http`` configured is asked ``GET /events?limit=1000``. That
  is what the member holds in memory: the events since it started (its
  latest 500), wherever it runs;
* a member without ``http`` is read from ``events.jsonl`` in its
  ``data_dir``, which works only where that directory is visible (same host,
  or a shared mount) and holds the member's whole history.

``--source file`` or ``--source http`` forces one way for every member.

With ``auth.require`` the HTTP port shows events to logged-in users only
(``--user NAME`` or ``LITEMIRROR_USER``, sent as HTTP Basic auth); events
about logins, users and admin actions are shown whole to admin users only.

``--follow`` polls every source each ``--interval`` seconds and prints the
events it has not printed yet, sorted by time within each poll (an event of
a member that answered late can appear after a later one of another
member). A member that cannot be reached is reported once on stderr, and
again when it is back; following goes on until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import re
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape

from litemirror import errors
from litemirror.client.credentials import control_context, tls_from, use_tls
from litemirror.config import SEVERITIES, Config, Member, load

from .control import login
from .users import login_option

SEVERITY_STYLE = {
    "info": "dim",
    "warning": "yellow",
    "error": "bold red",
    "critical": "bold white on red",
}
_SINCE_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(raw: str) -> float:
    """``30s``/``10m``/``2h``/``1d`` ago, an ISO 8601 time, or a Unix timestamp -> Unix time."""
    m = _SINCE_RE.match(raw.strip())
    if m:
        return time.time() - float(m.group(1)) * _UNIT_S[m.group(2)]
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since {raw!r}: give a duration like 30s, 10m, 2h, 1d, an ISO time like "
            "2025-01-31T14:00, or a Unix timestamp"
        ) from None
    return when.timestamp()  # a naive time is local time


def _key(ev: dict[str, Any]) -> tuple[Any, ...]:
    return (ev.get("ts"), ev.get("kind"), ev.get("message"))


def _scheme() -> str:
    """https when the mirror has [tls] (members then serve HTTPS, verified with its CA)."""
    return "https" if control_context() is not None else "http"


@dataclass
class Source:
    """Where one member's events are read from, and what was already printed."""

    member: Member
    via: str  # "http" or "file"
    #: The Authorization header for HTTP (the command line's login), if any.
    authorization: str | None = None
    offset: int = 0
    last_ts: float = float("-inf")
    seen_at_last: set[tuple[Any, ...]] = field(default_factory=set)
    down: str | None = None

    @property
    def where(self) -> str:
        if self.via == "http":
            return f"{_scheme()}://{self.member.http}/events"
        return str(self.member.data_dir / "events.jsonl")

    def fetch(self, timeout: float) -> list[dict[str, Any]]:
        """New events of this member since the last fetch (all of them the first time)."""
        if self.via == "http":
            return self._fresh(self._http(timeout))
        return self._file()

    def _http(self, timeout: float) -> list[dict[str, Any]]:
        url = f"{_scheme()}://{self.member.http}/events?limit=1000"
        headers = {"Authorization": self.authorization} if self.authorization else {}
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(
                request, timeout=timeout, context=control_context()
            ) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code != 401:
                raise errors.UnavailableError(
                    f"member {self.member.name}: cannot read {url}: HTTP {exc.code}"
                ) from exc
            raise errors.UnavailableError(
                f"member {self.member.name} requires a login to read its events "
                "(auth.require): run with --user NAME (or LITEMIRROR_USER and "
                "LITEMIRROR_PASSWORD)"
                if self.authorization is None
                else f"member {self.member.name}: the login was not accepted ({url})"
            ) from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise errors.UnavailableError(
                f"member {self.member.name}: cannot read {url}: {getattr(exc, 'reason', exc)}"
            ) from exc
        return [ev for ev in doc.get("events", []) if isinstance(ev, dict)]

    def _fresh(self, evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # A member's events come in time order; keep those after the last one printed.
        out = []
        for ev in evs:
            ts = float(ev.get("ts") or 0)
            if ts > self.last_ts:
                self.last_ts = ts
                self.seen_at_last = {_key(ev)}
                out.append(ev)
            elif ts == self.last_ts and _key(ev) not in self.seen_at_last:
                self.seen_at_last.add(_key(ev))
                out.append(ev)
        return out

    def _file(self) -> list[dict[str, Any]]:
        path = self.member.data_dir / "events.jsonl"
        try:
            with open(path, "rb") as f:
                f.seek(0, 2)
                if f.tell() < self.offset:  # replaced or truncated: start over
                    self.offset = 0
                f.seek(self.offset)
                data = f.read()
        except OSError as exc:
            raise errors.UnavailableError(
                f"member {self.member.name}: cannot read {path}: {exc.strerror}; run this "
                "where its data_dir is visible, or give the member an http address"
            ) from exc
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next poll
        self.offset += end
        out = []
        for line in data[:end].splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # a torn line from a crash: skip it
            if isinstance(ev, dict):
                out.append(ev)
        return out


def sources(config: Config, via: str, only: list[str] | None) -> list[Source]:
    out = []
    for mb in config.members:
        if only and mb.name not in only:
            continue
        how = via
        if via == "auto":
            how = "http" if mb.http else "file"
        elif via == "http" and not mb.http:
            raise errors.ConfigError(
                f"members: member {mb.name} has no http address; use --source file or auto"
            )
        out.append(Source(mb, how))
    if only:
        unknown = set(only) - {s.member.name for s in out}
        if unknown:
            known = ", ".join(mb.name for mb in config.members)
            raise errors.ConfigError(
                f"--member: no member named {', '.join(sorted(unknown))} (known: {known})"
            )
    return out


class Printer:
    def __init__(self, as_json: bool, min_severity: str) -> None:
        self.as_json = as_json
        self.min_rank = SEVERITIES.index(min_severity)
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def wanted(self, ev: dict[str, Any], since: float | None) -> bool:
        sev = str(ev.get("severity", "info"))
        rank = SEVERITIES.index(sev) if sev in SEVERITIES else 0
        return rank >= self.min_rank and (since is None or float(ev.get("ts") or 0) >= since)

    def event(self, ev: dict[str, Any]) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(ev, separators=(",", ":")) + "\n")
            sys.stdout.flush()
            return
        ts = float(ev.get("ts") or 0)
        when = dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        sev = str(ev.get("severity", "info"))
        style = SEVERITY_STYLE.get(sev, "")
        self.out.print(
            f"[dim]{when}[/] [bold]{escape(str(ev.get('member')))}[/] "
            f"[{style}]{sev.upper():8}[/] [cyan]{escape(str(ev.get('kind')))}[/] "
            f"{escape(str(ev.get('message')))}"
        )

    def note(self, text: str) -> None:
        self.err.print(f"[dim]{escape(text)}[/]")


def poll(
    srcs: list[Source], pool: ThreadPoolExecutor, timeout: float, printer: Printer
) -> tuple[list[dict[str, Any]], int]:
    """Fetch from every source at once; return new events sorted by time, and how many answered."""
    futures = [(s, pool.submit(s.fetch, timeout)) for s in srcs]
    new: list[dict[str, Any]] = []
    answered = 0
    for s, fut in futures:
        try:
            evs = fut.result()
        except errors.Error as exc:
            if s.down != exc.message:
                printer.note(exc.message)
            s.down = exc.message
            continue
        if s.down is not None:
            printer.note(f"member {s.member.name}: reading {s.where} again")
            s.down = None
        answered += 1
        new.extend(evs)
    new.sort(key=lambda ev: (float(ev.get("ts") or 0), str(ev.get("member"))))
    return new, answered


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    use_tls(tls_from(config))
    srcs = sources(config, args.source, args.member)
    who = login()
    if who is not None:
        token = base64.b64encode(f"{who[0]}:{who[1] or ''}".encode()).decode()
        for src in srcs:
            src.authorization = f"Basic {token}"
    printer = Printer(args.json, args.min_severity)
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(srcs)))) as pool:
        evs, answered = poll(srcs, pool, args.timeout, printer)
        evs = [ev for ev in evs if printer.wanted(ev, args.since)]
        if not args.follow and args.limit > 0:
            evs = evs[-args.limit :]
        for ev in evs:
            printer.event(ev)
        if not args.follow:
            return 0 if answered else 3
        try:
            while True:
                time.sleep(args.interval)
                evs, _ = poll(srcs, pool, args.timeout, printer)
                for ev in evs:
                    if printer.wanted(ev, args.since):
                        printer.event(ev)
        except KeyboardInterrupt:
            return 0


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "events",
        help="the event log of every member, merged by time (--follow to tail it)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--config", required=True)
    s.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    s.add_argument(
        "--member", action="append", metavar="NAME", help="only this member (repeatable)"
    )
    s.add_argument(
        "--since", type=parse_since, metavar="WHEN", help="30s, 10m, 2h, 1d, ISO time or Unix time"
    )
    s.add_argument("--min-severity", choices=SEVERITIES, default="info")
    s.add_argument("--limit", type=int, default=100, help="last N events without --follow (0: all)")
    s.add_argument("--source", choices=("auto", "http", "file"), default="auto")
    s.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    s.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for a member")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    login_option(s)
    s.set_defaults(func=run)
