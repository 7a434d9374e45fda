"""Running an outside command from the member: hooks and the virtual IP's ``ip``/``arping``.

The command runs in its own session (process group), with no stdin and its
output captured. When it overruns ``timeout``, or the task waiting for it is
cancelled, the whole group is killed and reaped before this returns: nothing
the command started outlives it, and no zombie is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Finished:
    """A command that ran to its end: exit status (negative: killed by that signal), output."""

    returncode: int
    stdout: bytes
    stderr: bytes


async def run_command(
    argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
) -> Finished:
    """Run ``argv`` and wait at most ``timeout`` seconds for it to finish.

    Raises TimeoutError when it overran (it has been killed by then) and
    another OSError when it cannot be started (FileNotFoundError: no such
    program). TimeoutError is an OSError too: catch it first.
    ``env``: its whole environment (None: this process's).
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=None if env is None else dict(env),
        # Its own process group, so a timeout kills what it started too.
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            # Timed out, or this task was cancelled: leave nothing running.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode is not None
    return Finished(proc.returncode, out, err)
