"""The backup manifest: a round trip, and every inconsistency named (pure, no I/O)."""

from __future__ import annotations

import msgspec
import pytest

from litemirror.backup import manifest as mf
from litemirror.errors import BackupError

HEX = "a" * 64


def copy(name: str = "app", **changes: object) -> mf.DatabaseCopy:
    base = mf.DatabaseCopy(
        name=name,
        file=mf.copy_file_name(name),
        lsn=42,
        bytes=8192,
        stored_bytes=1000,
        sha256=HEX,
        raw_sha256="b" * 64,
        tables={"(schema)": "1" * 32, "t": "2" * 32},
        integrity="ok",
    )
    return msgspec.structs.replace(base, **changes)


def manifest(**changes: object) -> mf.Manifest:
    base = mf.Manifest(
        mirror="m1",
        member="b",
        epoch=3,
        lsn=40,
        taken_at=1000.0,
        finished_at=1001.5,
        status="verified",
        databases=[copy()],
    )
    return msgspec.structs.replace(base, **changes)


def test_round_trip_keeps_every_field() -> None:
    m = manifest(databases=[copy("app"), copy("b2", lsn=7)])
    data = mf.encode(m)
    assert mf.decode(data) == m
    assert b'"format": 1' in data and b'"encryption": null' in data
    assert m.stored_bytes == 2000


def test_unknown_fields_from_a_newer_writer_are_ignored() -> None:
    raw = msgspec.json.decode(mf.encode(manifest()))
    raw["schedule"] = "nightly"
    raw["databases"][0]["pages"] = 2
    assert mf.decode(msgspec.json.encode(raw)) == manifest()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"format": 2}, "format 2 is not supported"),
        ({"member": "../x"}, "member '../x' is not a plain name"),
        ({"mirror": ".hidden"}, "mirror '.hidden' is not a plain name"),
        ({"epoch": -1}, "epoch -1 is negative"),
        ({"lsn": -5}, "lsn -5 is negative"),
        ({"finished_at": 999.0}, "finished_at 999.0 is before taken_at 1000.0"),
        ({"problem": "x"}, "status is verified but a problem is recorded"),
        ({"status": "failed"}, "status is failed but no problem is recorded"),
        ({"encryption": "key1"}, "encryption 'key1' is not supported"),
        ({"databases": []}, "it lists no database"),
        ({"databases": [copy(), copy()]}, "database 'app' is listed twice"),
        ({"databases": [copy(file="x.db")]}, "file 'x.db' should be 'app.db.zst'"),
        ({"databases": [copy(name="a/b", file="a/b.db.zst")]}, "the name is not a plain"),
        ({"databases": [copy(sha256="XYZ")]}, "sha256 'XYZ' is not 64 lowercase hex"),
        ({"databases": [copy(raw_sha256="")]}, "raw_sha256 '' is not 64"),
        ({"databases": [copy(lsn=-1)]}, "database 'app': lsn -1 is negative"),
        ({"databases": [copy(bytes=-1)]}, "a size is negative"),
        (
            {"databases": [copy(integrity="*** page 3 missing")]},
            "status is verified but database 'app' has integrity",
        ),
    ],
)
def test_each_inconsistency_is_named(changes: dict[str, object], expected: str) -> None:
    bad = manifest(**changes)
    assert any(expected in p for p in mf.problems(bad)), mf.problems(bad)
    with pytest.raises(BackupError, match="inconsistent"):
        mf.validate(bad)
    with pytest.raises(BackupError):
        mf.encode(bad)


def test_a_failed_set_with_its_problem_is_sound() -> None:
    bad_copy = copy(integrity="row 3 missing from index i")
    m = manifest(status="failed", problem="app: integrity_check failed", databases=[bad_copy])
    assert mf.problems(m) == []
    assert mf.decode(mf.encode(m)) == m


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "is not a valid backup manifest"),
        (b"{", "is not a valid backup manifest"),
        (b'{"mirror": "m"}', "is not a valid backup manifest"),
        (b'{"status": "maybe"}', "is not a valid backup manifest"),
    ],
)
def test_undecodable_manifest_is_a_clear_error(data: bytes, expected: str) -> None:
    with pytest.raises(BackupError, match=expected) as info:
        mf.decode(data, where="/b/set/manifest.json")
    assert "/b/set/manifest.json" in str(info.value)


def test_decode_names_the_file_on_an_inconsistent_manifest() -> None:
    raw = msgspec.json.decode(mf.encode(manifest()))
    raw["lsn"] = -1
    with pytest.raises(BackupError, match=r"^/s/manifest.json: .*lsn -1 is negative"):
        mf.decode(msgspec.json.encode(raw), where="/s/manifest.json")


@pytest.mark.parametrize(
    ("name", "is_set"),
    [
        ("20260101T120000Z-b-lsn42", True),
        ("20260101T120000Z-member-2-lsn0", True),
        (".partial-20260101T120000Z-b-lsn42", False),
        ("20260101T1200Z-b-lsn42", False),
        ("notes", False),
        ("20260101T120000Z-b-lsn", False),
    ],
)
def test_set_names(name: str, is_set: bool) -> None:
    assert mf.is_set_name(name) is is_set


def test_set_and_partial_names() -> None:
    name = mf.set_name("20260101T120000Z", "b", 42)
    assert name == "20260101T120000Z-b-lsn42"
    assert mf.partial_name(name) == ".partial-20260101T120000Z-b-lsn42"
    with pytest.raises(BackupError, match="YYYYmmddTHHMMSSZ"):
        mf.set_name("2026-01-01", "b", 1)
