"""Become-primary hooks: real executables and real Python modules, run for real."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from litemirror.config import HooksSection
from litemirror.errors import InternalError
from litemirror.server.ha.hooks import HookResult, Hooks

FACTS = {"mirror": "demo", "member": "b", "epoch": 7}


def script(tmp_path: Path, name: str, body: str) -> Path:
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return p


def run(hooks: Hooks, point: str, **kw: object) -> HookResult:
    args: dict[str, object] = {**FACTS, **kw}
    return asyncio.run(hooks.run(point, **args))  # type: ignore[arg-type]


# --- executables -----------------------------------------------------------------------------


def test_executable_gets_the_facts_as_environment_and_arguments(tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    s = script(
        tmp_path,
        "record.sh",
        """
        out="$1"; shift
        { echo "args=$*"; env | grep '^LITEMIRROR_' | sort; } > "$out"
        echo "all good"
        """,
    )
    # Arguments with spaces survive because the value is split like a shell would.
    hooks = Hooks(HooksSection(can_start_become_primary=f"{s} {out} 'two words' x"))
    r = run(hooks, "can_start_become_primary", extra={"previous_primary": "a"})
    assert r.ok and r.ran and r.succeeded
    assert r.point == "can_start_become_primary"
    assert "stdout: all good" in r.reason
    lines = out.read_text().splitlines()
    assert lines[0] == "args=two words x"
    assert set(lines[1:]) == {
        "LITEMIRROR_HOOK=can_start_become_primary",
        "LITEMIRROR_MIRROR=demo",
        "LITEMIRROR_MEMBER=b",
        "LITEMIRROR_EPOCH=7",
        "LITEMIRROR_ERROR=",
        "LITEMIRROR_PREVIOUS_PRIMARY=a",
    }


def test_error_reaches_the_failed_notification(tmp_path: Path) -> None:
    out = tmp_path / "err.txt"
    s = script(tmp_path, "err.sh", f'echo "$LITEMIRROR_HOOK|$LITEMIRROR_ERROR" > {out}\n')
    hooks = Hooks(HooksSection(notify_become_primary_failed=str(s)))
    r = run(hooks, "notify_become_primary_failed", error=RuntimeError("vip not taken"))
    assert r.ok and r.succeeded
    assert out.read_text().strip() == "notify_become_primary_failed|RuntimeError: vip not taken"
    # No previous primary given: the variable is absent, not empty.
    s2 = script(tmp_path, "prev.sh", f'echo "${{LITEMIRROR_PREVIOUS_PRIMARY-unset}}" > {out}\n')
    run(Hooks(HooksSection(notify_become_primary=str(s2))), "notify_become_primary")
    assert out.read_text().strip() == "unset"


def test_failing_check_hook_aborts_with_its_output(tmp_path: Path) -> None:
    s = script(tmp_path, "no.sh", "echo 'disk not mounted' >&2\necho progress\nexit 3\n")
    hooks = Hooks(HooksSection(check_become_primary_ok=str(s)))
    r = run(hooks, "check_become_primary_ok")
    assert not r.ok and not r.succeeded and r.ran
    assert "failed: exit status 3" in r.reason
    assert "stderr: disk not mounted" in r.reason
    assert "stdout: progress" in r.reason
    assert "becoming primary is aborted" in r.reason


def test_failing_notify_hook_is_reported_but_does_not_block(tmp_path: Path) -> None:
    s = script(tmp_path, "boom.sh", "echo 'pager down' >&2\nexit 1\n")
    hooks = Hooks(HooksSection(notify_become_primary=str(s)))
    r = run(hooks, "notify_become_primary")
    assert r.ok  # the takeover goes on
    assert not r.succeeded
    assert "pager down" in r.reason and "do not block" in r.reason


def test_slow_hook_is_killed_at_the_timeout_with_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # The shell starts a child that would outlive it; the timeout must kill both.
    s = script(tmp_path, "slow.sh", f"sleep 60 &\necho $! > {pidfile}\nwait\n")
    hooks = Hooks(HooksSection(can_start_become_primary=str(s), timeout_s=0.5))
    started = time.monotonic()
    r = run(hooks, "can_start_become_primary")
    assert time.monotonic() - started < 5
    assert not r.ok
    assert "did not finish within 0.5 s and was killed" in r.reason
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        # A killed child of ours may linger as a zombie until reaped by init.
        if Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the hook's child process {child} is still running after the timeout")


def test_missing_or_not_executable_command_is_a_failure(tmp_path: Path) -> None:
    hooks = Hooks(HooksSection(can_start_become_primary=str(tmp_path / "nope.sh")))
    r = run(hooks, "can_start_become_primary")
    assert not r.ok and "cannot run" in r.reason and "nope.sh" in r.reason
    plain = tmp_path / "plain.sh"
    plain.write_text("#!/bin/sh\nexit 0\n")
    hooks = Hooks(HooksSection(check_become_primary_ok=str(plain)))
    r = run(hooks, "check_become_primary_ok")
    assert not r.ok and "Permission denied" in r.reason


def test_long_output_is_truncated(tmp_path: Path) -> None:
    s = script(tmp_path, "loud.sh", "yes 0123456789 | head -c 100000 >&2\necho END >&2\nexit 1\n")
    r = run(Hooks(HooksSection(check_become_primary_ok=str(s))), "check_become_primary_ok")
    assert not r.ok
    assert len(r.reason) < 2000
    assert "[...]" in r.reason and r.reason.split("stderr: ")[1].split(";")[0].endswith("END")


def test_no_hook_configured_means_yes() -> None:
    hooks = Hooks()
    for point in (
        "can_start_become_primary",
        "check_become_primary_ok",
        "notify_become_primary",
        "notify_become_primary_failed",
    ):
        r = run(hooks, point)
        assert r.ok and not r.ran and r.succeeded


def test_unknown_point_and_bad_extra_are_programming_errors() -> None:
    with pytest.raises(InternalError, match="unknown hook point 'become_primary'"):
        run(Hooks(), "become_primary")
    hooks = Hooks(HooksSection(notify_become_primary="/bin/true"))
    with pytest.raises(InternalError, match="extra fact 'epoch'"):
        run(hooks, "notify_become_primary", extra={"epoch": 9})


# --- python hooks ----------------------------------------------------------------------------


@pytest.fixture
def pymod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real module on sys.path, with a unique name so tests never share an import."""
    name = f"sitehooks_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            import asyncio, time
            SEEN = []

            def record(facts):
                SEEN.append(facts)
                return True

            async def async_yes(facts):
                await asyncio.sleep(0.01)
                SEEN.append(facts)
                return "fine"

            def say_no(facts):
                return False

            async def async_no(facts):
                return 0

            def explode(facts):
                raise ValueError(f"epoch {facts['epoch']} is not allowed here")

            def slow(facts):
                time.sleep(1.5)
                return True

            async def slow_async(facts):
                await asyncio.sleep(30)
                return True

            NOT_CALLABLE = 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_python_hook_gets_the_facts(pymod: str) -> None:
    hooks = Hooks(HooksSection(can_start_become_primary=f"python:{pymod}:record"))
    r = run(hooks, "can_start_become_primary", extra={"previous_primary": "a"})
    assert r.ok and r.succeeded and r.ran
    assert sys.modules[pymod].SEEN == [
        {
            "hook": "can_start_become_primary",
            "mirror": "demo",
            "member": "b",
            "epoch": 7,
            "error": None,
            "previous_primary": "a",
        }
    ]


def test_async_python_hook(pymod: str) -> None:
    hooks = Hooks(HooksSection(notify_become_primary=f"python:{pymod}:async_yes"))
    r = run(hooks, "notify_become_primary", error="x")
    assert r.ok and r.succeeded
    assert sys.modules[pymod].SEEN[0]["error"] == "x"


@pytest.mark.parametrize(
    ("function", "needle"),
    [
        ("say_no", "returned False"),
        ("async_no", "returned 0"),
        ("explode", "raised ValueError: epoch 7 is not allowed here"),
        ("missing", "has no function 'missing'"),
        ("NOT_CALLABLE", "has no function 'NOT_CALLABLE'"),
    ],
)
def test_python_hook_saying_no_or_failing_aborts(pymod: str, function: str, needle: str) -> None:
    hooks = Hooks(HooksSection(check_become_primary_ok=f"python:{pymod}:{function}"))
    r = run(hooks, "check_become_primary_ok")
    assert not r.ok and not r.succeeded
    assert needle in r.reason


def test_python_hook_in_a_missing_module(pymod: str) -> None:
    hooks = Hooks(HooksSection(can_start_become_primary=f"python:{pymod}_gone:f"))
    r = run(hooks, "can_start_become_primary")
    assert not r.ok
    assert f"raised ModuleNotFoundError: No module named '{pymod}_gone'" in r.reason


@pytest.mark.parametrize("function", ["slow", "slow_async"])
def test_python_hook_timeout(pymod: str, function: str) -> None:
    hooks = Hooks(HooksSection(check_become_primary_ok=f"python:{pymod}:{function}", timeout_s=0.3))
    started = time.monotonic()
    r = run(hooks, "check_become_primary_ok")
    assert not r.ok
    assert "did not return within 0.3 s" in r.reason
    # asyncio.run waits for the worker thread of a sync hook on exit; an async one is cancelled.
    assert time.monotonic() - started < 3
