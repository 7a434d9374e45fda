"""The backup manifest: round trip and the refusals of a bad one."""

from __future__ import annotations

import pytest

from litemirror.backup.manifest import (
    DatabaseCopy,
    Manifest,
    ManifestError,
    decode_manifest,
    encode_manifest,
)


def copy(name: str = "app", file: str = "app.db.zst") -> DatabaseCopy:
    return DatabaseCopy(
        name=name,
        file=file,
        lsn=7,
        bytes=4096,
        stored_bytes=300,
        sha256="a" * 64,
        raw_sha256="b" * 64,
        tables={"t": "c" * 32},
        integrity="ok",
    )


def manifest(*dbs: DatabaseCopy) -> Manifest:
    return Manifest(
        mirror="m",
        member="b",
        epoch=2,
        lsn=9,
        taken_at=1.5,
        finished_at=2.5,
        status="verified",
        databases=list(dbs or (copy(),)),
    )


def test_round_trip() -> None:
    m = manifest()
    assert decode_manifest(encode_manifest(m)) == m
    assert m.database("app") == copy()
    assert m.database("nope") is None


BAD = [
    (b"not json", "not a backup manifest"),
    (b'{"format": 1}', "not a backup manifest"),
    (encode_manifest(manifest()).replace(b'"verified"', b'"maybe"'), "not a backup manifest"),
    (encode_manifest(manifest()).replace(b'"format": 1', b'"format": 2'), "format 2"),
    (encode_manifest(manifest(copy(), copy())), "listed twice"),
    (encode_manifest(manifest(copy(file="../x"))), "not a plain file name"),
    (encode_manifest(manifest(copy(file=".hidden"))), "not a plain file name"),
]


@pytest.mark.parametrize(("data", "words"), BAD)
def test_bad_manifest_is_refused(data: bytes, words: str) -> None:
    with pytest.raises(ManifestError, match=words):
        decode_manifest(data)
