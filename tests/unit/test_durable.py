"""Replacing a file whole and durably (litemirror.durable), on real files."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from litemirror.durable import fsync_dir, replace_file, write_atomic

#: While a test records, every path opened in this process (the "open" audit
#: event, raised by os.open and open() alike). The directory fsync has to open
#: the directory: that open is how a test sees it happen, with no mock.
_opened: list[list[str]] = []


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _opened and isinstance(args[0], str | bytes | os.PathLike):
        _opened[-1].append(os.fsdecode(args[0]))


sys.addaudithook(_hook)


@contextmanager
def opened() -> Iterator[list[str]]:
    seen: list[str] = []
    _opened.append(seen)
    try:
        yield seen
    finally:
        _opened.pop()


def test_replaces_the_content_whole_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old content that is longer than the new one")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_creates_a_missing_file(tmp_path: Path) -> None:
    target = tmp_path / "fresh.json"
    write_atomic(target, b"{}")
    assert target.read_bytes() == b"{}"
    assert [p.name for p in tmp_path.iterdir()] == ["fresh.json"]


def test_the_directory_is_synced_after_the_rename(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    with opened() as seen:
        write_atomic(target, b"x")
    assert seen == [str(tmp_path / "state.json.tmp"), str(tmp_path)]


def test_a_named_temp_file_is_used_and_removed(tmp_path: Path) -> None:
    target = tmp_path / "member.json"
    tmp = tmp_path / "member.tmp"
    with opened() as seen:
        write_atomic(target, b"1", tmp=tmp)
    assert seen[0] == str(tmp)
    assert target.read_bytes() == b"1" and not tmp.exists()


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_failed_rename_removes_the_temp_file(tmp_path: Path) -> None:
    # A directory in the way: the rename fails after the temp file was written.
    target = tmp_path / "state.json"
    target.mkdir()
    (target / "inside").write_bytes(b"keep")
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert (target / "inside").read_bytes() == b"keep"


def test_replace_file_moves_and_syncs_the_directory(tmp_path: Path) -> None:
    tmp = tmp_path / "db.seeding"
    tmp.write_bytes(b"copy")
    final = tmp_path / "db.sqlite"
    final.write_bytes(b"old")
    with opened() as seen:
        replace_file(tmp, final)
    assert final.read_bytes() == b"copy" and not tmp.exists()
    assert seen == [str(tmp_path)]


def test_fsync_dir_of_a_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fsync_dir(tmp_path / "nowhere")


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o640])
def test_mode_is_set_exactly_whatever_the_umask(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "ca.key"
    old = os.umask(0o077 if mode & 0o044 else 0o000)
    try:
        write_atomic(target, b"secret", mode=mode)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"secret"
    assert target.stat().st_mode & 0o777 == mode


def test_mode_replaces_the_bits_of_a_leftover_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "ca.key"
    tmp = tmp_path / ".ca.key.tmp"
    tmp.write_bytes(b"stale")
    tmp.chmod(0o666)
    write_atomic(target, b"secret", tmp=tmp, mode=0o600)
    assert target.stat().st_mode & 0o777 == 0o600
    assert not tmp.exists()


def test_without_mode_the_umask_applies(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    old = os.umask(0o027)
    try:
        write_atomic(target, b"{}")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o640


def test_without_sync_the_file_is_still_replaced_but_the_directory_is_not_synced(
    tmp_path: Path,
) -> None:
    target = tmp_path / "segment"
    target.write_bytes(b"old")
    with opened() as seen:
        write_atomic(target, b"new", sync=False)
    assert target.read_bytes() == b"new"
    assert seen == [str(tmp_path / "segment.tmp")]
    assert [p.name for p in tmp_path.iterdir()] == ["segment"]
