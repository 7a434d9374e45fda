"""Outside commands run by the member (server.ha.commands): real short processes."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from litemirror.server.ha.commands import run_command


def test_exit_status_and_output_are_captured() -> None:
    done = asyncio.run(
        run_command(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10, env={})
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, b"out\n", b"err\n")


def test_the_environment_given_is_the_whole_environment() -> None:
    code = "import os; print(os.environ.get('ONLY'), os.environ.get('HOME'))"
    done = asyncio.run(run_command([sys.executable, "-c", code], timeout=10, env={"ONLY": "1"}))
    assert done.stdout == b"1 None\n"


def test_a_missing_program_raises_file_not_found() -> None:
    with pytest.raises(FileNotFoundError):
        asyncio.run(run_command(["/nonexistent/litemirror-no-such-tool"], timeout=10))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_an_overrun_kills_the_command_and_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pid_file}; wait"
    with pytest.raises(TimeoutError):
        asyncio.run(run_command(["sh", "-c", script], timeout=0.5))
    child = int(pid_file.read_text())
    # Killed with SIGKILL; init reaps the orphan shortly after.
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child)
