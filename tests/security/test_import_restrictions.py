"""``db add --from`` reads only what the operator put in ``server.import_dir``.

The attack (issue: a member imported a 0600 private SQLite file, a symlink to
one and its own live ``_system.db``, after which a read user could read the
password hashes; and its errors told "does not exist" from "not SQLite").
Here a member with TLS and logins required is asked, by its admin, to import
each of those; every request is refused, nothing is created, and the three
kinds of unusable file get one answer.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from litemirror import errors
from litemirror.server.storage.importer import resolve_source
from litemirror.testing.cluster import Cluster
from litemirror.testing.secured import add_user, cli


def sqlite_file(path: Path, rows: int = 3) -> Path:
    with sqlite3.connect(path) as s:
        s.execute("CREATE TABLE secret (id INTEGER PRIMARY KEY, v TEXT)")
        s.executemany("INSERT INTO secret VALUES (?, ?)", [(i, f"s{i}") for i in range(rows)])
    s.close()
    return path


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    base = tmp_path_factory.mktemp("imports")
    imports = base / "import"
    imports.mkdir()
    c = Cluster(
        base / "mirror",
        tls_require=True,
        sections={"auth": {"require": True}, "server": {"import_dir": str(imports)}},
    )
    c.start()
    try:
        add_user(c, "root", by=None)
        yield c, imports
    finally:
        c.kill_all()


def databases(c: Cluster) -> list[str]:
    return sorted(p.stem for p in (c["a"].data_dir / "databases").iterdir())


def refused(c: Cluster, name: str, src: str) -> str:
    before = databases(c)
    r = cli(c, "db", "add", name, "--from", src, "--no-wait", user="root")
    assert r.returncode != 0, f"{src} was imported:\n{r.stdout}"
    assert databases(c) == before
    assert not list((c["a"].data_dir / "databases").glob("*.importing*"))
    return r.stderr


def test_private_file_outside_the_import_directory_is_refused(
    mirror: tuple[Cluster, Path], tmp_path: Path
) -> None:
    c, _ = mirror
    private = sqlite_file(tmp_path / "private.sqlite")
    private.chmod(0o600)
    err = refused(c, "stolen", str(private))
    assert "not inside the import directory" in err, err


def test_symlink_in_the_import_directory_to_a_file_outside_is_refused(
    mirror: tuple[Cluster, Path], tmp_path: Path
) -> None:
    c, imports = mirror
    private = sqlite_file(tmp_path / "private.sqlite")
    link = imports / "innocent.sqlite"
    link.symlink_to(private)
    try:
        err = refused(c, "linked", str(link))
        assert "not inside the import directory" in err, err
        err = refused(c, "linked", "innocent.sqlite")  # relative to the import directory
        assert "not inside the import directory" in err, err
    finally:
        link.unlink()


def test_the_members_own_system_database_is_refused(mirror: tuple[Cluster, Path]) -> None:
    c, imports = mirror
    system = c["a"].data_dir / "databases" / "_system.db"
    assert system.exists()
    assert "not inside the import directory" in refused(c, "hashes", str(system))
    # Through the import directory: "..", and a symlink to the data directory.
    up = os.path.relpath(system, imports)
    assert "not inside the import directory" in refused(c, "hashes", up)
    link = imports / "data"
    link.symlink_to(c["a"].data_dir)
    try:
        assert "not inside" in refused(c, "hashes", "data/databases/_system.db")
    finally:
        link.unlink()
    # The name itself stays reserved.
    ok = sqlite_file(imports / "plain.sqlite")
    assert "reserved" in refused(c, "_system", str(ok))


def test_missing_unreadable_and_not_sqlite_get_one_answer(mirror: tuple[Cluster, Path]) -> None:
    c, imports = mirror
    (imports / "notes.sqlite").write_text("this is not a database\n" * 100)
    os.mkfifo(imports / "pipe.sqlite")  # opening a FIFO would hang the import
    (imports / "folder.sqlite").mkdir()
    answers = {}
    for src in ("missing.sqlite", "notes.sqlite", "pipe.sqlite", "folder.sqlite"):
        err = refused(c, "probe", src)
        assert "cannot be imported" in err, err
        answers[src] = err.replace(src, "SRC")
    assert len(set(answers.values())) == 1, answers
    log = (c.base / "a.log").read_text()
    assert "no such regular file" in log and "not a readable SQLite database" in log


def test_a_file_in_the_import_directory_is_imported(mirror: tuple[Cluster, Path]) -> None:
    c, imports = mirror
    sqlite_file(imports / "legacy.sqlite", rows=5)
    r = cli(
        c, "db", "add", "legacy", "--from", str(imports / "legacy.sqlite"), "--no-wait", user="root"
    )
    assert r.returncode == 0, r.stderr
    sqlite_file(imports / "relative.sqlite", rows=2)
    r = cli(c, "db", "add", "relative", "--from", "relative.sqlite", "--no-wait", user="root")
    assert r.returncode == 0, r.stderr  # relative to the import directory
    assert {"legacy", "relative"} <= set(databases(c))


def test_imports_are_off_without_an_import_directory(cluster_factory: Any, tmp_path: Path) -> None:
    c = cluster_factory(tls_require=True)
    c.start()
    src = sqlite_file(tmp_path / "legacy.sqlite")
    r = cli(c, "db", "add", "legacy", "--from", str(src), "--no-wait", user=None)
    assert r.returncode != 0
    assert "turned off" in r.stderr and "server.import_dir" in r.stderr, r.stderr
    assert not (c["a"].data_dir / "databases" / "legacy.db").exists()


# ------------------------------------------------------------- the pure check


@pytest.mark.parametrize(
    ("src", "why"),
    [
        ("/etc/passwd", "not inside"),
        ("../outside.db", "not inside"),
        ("sub/../../outside.db", "not inside"),
        ("", "not inside"),  # the directory itself
        (".", "not inside"),
        ("link-out.db", "not inside"),
        ("data/databases/_system.db", "own files"),
        ("inside.db\x00.txt", "NUL character"),
        ("inside.db", None),
        ("sub/inside.db", None),
        ("link-in.db", None),
    ],
)
def test_resolve_source(tmp_path: Path, src: str, why: str | None) -> None:
    imports = tmp_path / "import"
    (imports / "sub").mkdir(parents=True)
    (tmp_path / "outside.db").write_bytes(b"")
    (imports / "inside.db").write_bytes(b"")
    (imports / "link-out.db").symlink_to(tmp_path / "outside.db")
    (imports / "link-in.db").symlink_to(imports / "inside.db")
    data = imports / "data"  # a data_dir reachable from the import directory
    (data / "databases").mkdir(parents=True)
    if why is None:
        got = resolve_source(src, str(imports), [data], "a")
        assert got.parent in (imports, imports / "sub") and not got.is_symlink()
        return
    with pytest.raises(errors.ProgrammingError, match=why):
        resolve_source(src, str(imports), [data], "a")


def test_resolve_source_without_import_dir_says_how_to_enable() -> None:
    with pytest.raises(errors.ProgrammingError, match=r"server\.import_dir"):
        resolve_source("/tmp/x.db", None, [], "a")


def _config(tmp_path: Path, import_dir: str) -> Any:
    from litemirror.config import build

    data = {
        "mirror": {"name": "m"},
        "members": [{"name": "a", "address": "127.0.0.1:7701", "data_dir": "data/a"}],
        "server": {"import_dir": import_dir},
    }
    return build(data, path=tmp_path / "mirror.toml", environ={})


@pytest.mark.parametrize("import_dir", ["data", "data/a", "data/a/databases", ".", ""])
def test_import_dir_overlapping_a_data_dir_is_refused(tmp_path: Path, import_dir: str) -> None:
    with pytest.raises(errors.ConfigError, match=r"server\.import_dir"):
        _config(tmp_path, import_dir)


def test_import_dir_is_made_absolute_against_the_config_directory(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "import")
    assert cfg.server.import_dir == str(tmp_path / "import")
