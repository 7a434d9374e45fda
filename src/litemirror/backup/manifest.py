"""The manifest of a backup set: what it holds and how to check it (pure).

A backup set is a directory ``<YYYYmmddTHHMMSSZ>-<member>-lsn<N>/`` holding
one compressed copy per database and ``manifest.json``, written last: a
directory without it (or whose name starts with ".") is not a backup. The
manifest names, per database, the stored file, the LSN the copy holds (its
meta LSN), the sha256 of the stored and of the decompressed bytes, and the
table checksums ``litemirror verify`` computes. This module only encodes,
decodes and validates; it does no I/O.
"""

from __future__ import annotations

from typing import Literal

import msgspec

FORMAT = 1
MANIFEST_NAME = "manifest.json"


class DatabaseCopy(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    file: str
    #: The LSN the copy holds (its ``_litemirror_meta``).
    lsn: int
    bytes: int
    stored_bytes: int
    #: Of the stored (compressed) file.
    sha256: str
    #: Of the decompressed SQLite file.
    raw_sha256: str
    #: Table checksums as ``litemirror verify`` computes them.
    tables: dict[str, str]
    #: ``PRAGMA integrity_check`` of the copy ("ok").
    integrity: str


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    format: int = FORMAT
    mirror: str
    member: str
    epoch: int
    #: The member's journal LSN when the backup started.
    lsn: int
    taken_at: float
    finished_at: float
    status: Literal["verified", "failed"]
    problem: str | None = None
    compression: Literal["zstd"] = "zstd"
    #: None: not encrypted (later: the key id).
    encryption: str | None = None
    databases: list[DatabaseCopy]

    def database(self, name: str) -> DatabaseCopy | None:
        return next((d for d in self.databases if d.name == name), None)


class ManifestError(ValueError):
    """The manifest does not decode or contradicts itself (the shell names the file)."""


_decoder = msgspec.json.Decoder(Manifest)


def encode_manifest(manifest: Manifest) -> bytes:
    return msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"


def decode_manifest(data: bytes) -> Manifest:
    """Decode and validate; raise :class:`ManifestError` saying what is wrong."""
    try:
        manifest = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise ManifestError(f"not a backup manifest: {exc}") from exc
    problem = validate(manifest)
    if problem is not None:
        raise ManifestError(problem)
    return manifest


def validate(manifest: Manifest) -> str | None:
    """What is wrong with ``manifest``, or None."""
    if manifest.format != FORMAT:
        return f"manifest format {manifest.format} is not supported (this version reads {FORMAT})"
    names = [d.name for d in manifest.databases]
    if len(set(names)) != len(names):
        return f"a database is listed twice: {sorted(names)}"
    for d in manifest.databases:
        if "/" in d.file or d.file in ("", ".", "..") or d.file.startswith("."):
            return f"database {d.name}: file name {d.file!r} is not a plain file name"
        if d.lsn < 0 or d.bytes < 0 or d.stored_bytes < 0:
            return f"database {d.name}: negative lsn or size"
    return None
