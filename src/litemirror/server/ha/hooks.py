"""Hooks run when a member becomes primary, configured in ``[hooks]``.

Theory of operation: a takeover passes four points, each of which may run one
site-specific hook (``HOOK_POINTS``)::

    can_start_become_primary      before anything changes       failure aborts the takeover
    check_become_primary_ok       ready, before taking writes   failure aborts the takeover
    notify_become_primary         after the member is primary   failure is logged, never blocks
    notify_become_primary_failed  after a takeover was aborted  failure is logged, never blocks

An aborted takeover is retried by the failover loop, so a "no" from a check
hook is a veto for now, not forever.

A hook is either a command line (split like a shell would, without running a
shell) whose exit status 0 means yes, or ``python:package.module:function``,
called with a dict of the facts, sync or async, whose truthy return means yes.
The facts are the same for both; a command gets them as environment variables::

    hook              LITEMIRROR_HOOK               the point, e.g. "check_become_primary_ok"
    mirror            LITEMIRROR_MIRROR             mirror name
    member            LITEMIRROR_MEMBER             this member's name
    epoch             LITEMIRROR_EPOCH              the epoch being taken (integer)
    error             LITEMIRROR_ERROR              why a takeover failed ("" / None if not)
    previous_primary  LITEMIRROR_PREVIOUS_PRIMARY   only when known
    any extra key k   LITEMIRROR_<K>                as passed by the caller

Every hook runs under ``hooks.timeout_s``. A command that overruns is killed
with its whole process group (it runs in a session of its own); a Python
function cannot be killed, so an overrunning sync function is reported as
failed and left to finish in its worker thread.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import re
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litemirror.config import HOOK_POINTS, PYTHON_HOOK_RE, HooksSection
from litemirror.errors import InternalError
from litemirror.server.ha.commands import run_command

log = logging.getLogger("litemirror.hooks")

#: Points whose failure stops the takeover; the others only inform.
BLOCKING_POINTS = frozenset({"can_start_become_primary", "check_become_primary_ok"})
#: Characters of a hook's output kept in the reason (the end, where errors are).
OUTPUT_LIMIT = 1000
_FACT_KEY_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
_CORE_FACTS = frozenset({"hook", "mirror", "member", "epoch", "error"})


@dataclass(frozen=True, slots=True)
class HookResult:
    """What a hook said, as the takeover should act on it."""

    #: May the takeover go on? False only when a blocking hook failed or said no.
    ok: bool
    #: One sentence for the log and for status, including the hook's output.
    reason: str
    #: The hook point this answers.
    point: str = ""
    #: Whether a hook was configured and run at all.
    ran: bool = False
    #: Whether the hook itself succeeded (a failed notify hook still has ``ok``).
    succeeded: bool = True


class Hooks:
    """The configured hooks of one member; see the module docstring."""

    def __init__(self, section: HooksSection | None = None) -> None:
        self.section = section if section is not None else HooksSection()
        self.timeout_s = self.section.timeout_s

    def configured(self, point: str) -> str | None:
        """The hook value configured for ``point``, or None."""
        _check_point(point)
        value: str | None = getattr(self.section, point)
        return value

    async def run(
        self,
        point: str,
        *,
        mirror: str,
        member: str,
        epoch: int,
        error: str | BaseException | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> HookResult:
        """Run the hook for ``point`` (if any) and say whether the takeover may go on.

        ``extra`` adds facts, e.g. ``{"previous_primary": "a"}``; keys are
        lower-case identifiers and None values are left out. Never raises for
        a failing hook: failures are in the result (and logged).
        """
        value = self.configured(point)
        if value is None:
            return HookResult(True, f"no {point} hook configured", point, ran=False)
        facts = _facts(point, mirror, member, epoch, error, extra)
        started = time.monotonic()
        if value.startswith("python:"):
            succeeded, detail = await self._run_python(value, facts)
        else:
            succeeded, detail = await self._run_command(value, facts)
        took = time.monotonic() - started
        blocking = point in BLOCKING_POINTS
        if succeeded:
            reason = f"{point} hook {value!r} said yes in {took:.2f} s{detail}"
        elif blocking:
            reason = f"{point} hook {value!r} failed: {detail}; becoming primary is aborted"
        else:
            reason = f"{point} hook {value!r} failed: {detail} (notify hooks do not block)"
        level = logging.INFO if succeeded else logging.WARNING
        log.log(level, "%s (member %s, epoch %d)", reason, member, epoch)
        return HookResult(
            ok=succeeded or not blocking,
            reason=reason,
            point=point,
            ran=True,
            succeeded=succeeded,
        )

    async def _run_command(self, value: str, facts: dict[str, Any]) -> tuple[bool, str]:
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            return False, f"not a valid command line ({exc})"
        if not argv:
            return False, "the command line is empty"
        env = dict(os.environ)
        for key, fact in facts.items():
            env[f"LITEMIRROR_{key.upper()}"] = "" if fact is None else str(fact)
        try:
            done = await run_command(argv, timeout=self.timeout_s, env=env)
        except TimeoutError:  # first: TimeoutError is an OSError too
            return False, f"did not finish within {self.timeout_s:g} s and was killed"
        except OSError as exc:
            return False, f"cannot run {argv[0]!r}: {exc.strerror or exc}"
        output = _output(done.stdout, done.stderr)
        rc = done.returncode
        if rc == 0:
            return True, output
        if rc is not None and rc < 0:
            return False, f"killed by signal {-rc}{output}"
        return False, f"exit status {rc}{output}"

    async def _run_python(self, value: str, facts: dict[str, Any]) -> tuple[bool, str]:
        m = PYTHON_HOOK_RE.match(value)
        if m is None:
            return False, "not of the form 'python:package.module:function'"
        module_name, function_name = m.group("module"), m.group("function")

        async def call() -> object:
            # Imports run in a thread: a module may do slow work when first imported.
            module = await asyncio.to_thread(importlib.import_module, module_name)
            fn = getattr(module, function_name, None)
            if not callable(fn):
                raise LookupError(f"module {module_name!r} has no function {function_name!r}")
            if inspect.iscoroutinefunction(fn):
                return await fn(dict(facts))
            # A sync function runs in a thread so a slow one does not stall the member.
            result = await asyncio.to_thread(fn, dict(facts))
            if inspect.isawaitable(result):  # e.g. an object with an async __call__
                result = await result
            return result

        try:
            result = await asyncio.wait_for(call(), self.timeout_s)
        except TimeoutError:
            return False, (
                f"did not return within {self.timeout_s:g} s (a sync function keeps running "
                "in its thread; it cannot be killed)"
            )
        except (Exception, SystemExit) as exc:
            return False, f"raised {type(exc).__name__}: {_clip(str(exc))}"
        if result:
            return True, ""
        return False, f"returned {_clip(repr(result))}"


def _check_point(point: str) -> None:
    if point not in HOOK_POINTS:
        raise InternalError(
            f"hooks: unknown hook point {point!r}; the points are {', '.join(HOOK_POINTS)}"
        )


def _facts(
    point: str,
    mirror: str,
    member: str,
    epoch: int,
    error: str | BaseException | None,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if isinstance(error, BaseException):
        error = f"{type(error).__name__}: {error}"
    facts: dict[str, Any] = {
        "hook": point,
        "mirror": mirror,
        "member": member,
        "epoch": epoch,
        "error": error,
    }
    for key, value in (extra or {}).items():
        if not _FACT_KEY_RE.match(key) or key in _CORE_FACTS:
            raise InternalError(
                f"hooks: extra fact {key!r} must be a lower-case identifier other than "
                f"{', '.join(sorted(_CORE_FACTS))}"
            )
        if value is not None:
            facts[key] = value
    return facts


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= OUTPUT_LIMIT else "[...]" + text[-OUTPUT_LIMIT:]


def _output(out: bytes, err: bytes) -> str:
    """The hook's output for the reason, stderr first; "" when it printed nothing."""
    parts = []
    for name, data in (("stderr", err), ("stdout", out)):
        text = _clip(data.decode(errors="replace"))
        if text:
            parts.append(f"{name}: {text}")
    return ("; " + "; ".join(parts)) if parts else ""
