"""The manifest of a backup set: what it holds, where it was taken, whether it verified.

Pure: encode, decode and validate only. The shell that takes a backup
(``server/storage/backups.py``) fills it; ``litemirror backup list`` and
``litemirror restore`` read it. ``format`` is bumped on any change a reader of
an older format could misread; unknown fields are ignored so a newer writer's
additions (an encryption key id, a schedule name) do not break an older reader.

Layout of a set (``set_name`` and ``partial_name`` build the names)::

    <root>/<mirror>/<YYYYmmddTHHMMSSZ>-<member>-lsn<N>/    complete
        manifest.json                                      written last
        <db>.db.zst                                        one per database
        (<db>.db.zst.enc                                   instead, when encrypted)
    <root>/<mirror>/.partial-<same name>/                  while being written
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from litemirror.errors import BackupError

from .sealed import parse_scheme

FORMAT = 1
MANIFEST_FILE = "manifest.json"
PARTIAL_PREFIX = ".partial-"
COPY_SUFFIX = ".db.zst"
#: Appended to a copy's file name when the set is encrypted (:mod:`.sealed`).
SEALED_SUFFIX = ".enc"
#: What ``PRAGMA integrity_check`` answers for a sound database.
INTEGRITY_OK = "ok"

Status = Literal["verified", "failed"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_STAMP = re.compile(r"\d{8}T\d{6}Z")
# A name that becomes a path component: no separator, not hidden, not "." or "..".
_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_SET_NAME = re.compile(r"(?P<stamp>\d{8}T\d{6}Z)-(?P<member>.+)-lsn(?P<lsn>\d+)")


class DatabaseCopy(msgspec.Struct, frozen=True, kw_only=True):
    """One database's compressed copy in a set."""

    name: str
    #: File name inside the set directory: ``<name>.db.zst``.
    file: str
    #: The LSN the copy holds (the database's ``_litemirror_meta`` LSN).
    lsn: int
    #: Size of the SQLite file before compression.
    bytes: int
    #: Size of the stored (compressed) file.
    stored_bytes: int
    #: sha256 of the stored (compressed) file.
    sha256: str
    #: sha256 of the SQLite file before compression.
    raw_sha256: str
    #: Table checksums as ``litemirror verify`` computes them (schema under "(schema)").
    tables: dict[str, str]
    #: ``PRAGMA integrity_check`` of the copy, its rows joined by newlines ("ok").
    integrity: str


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a reader needs to trust, list or restore a backup set."""

    format: int = FORMAT
    mirror: str
    member: str
    epoch: int
    #: The member's journal LSN when the backup started.
    lsn: int
    #: Unix seconds.
    taken_at: float
    finished_at: float
    status: Status
    #: Why the set failed verification; None when verified.
    problem: str | None = None
    compression: Literal["zstd"] = "zstd"
    #: None: stored in clear. Else ``"<scheme>:<key id>"`` (:func:`.sealed.scheme_of`):
    #: every copy is compressed, then sealed with the key of that id.
    encryption: str | None = None
    databases: list[DatabaseCopy]

    @property
    def stored_bytes(self) -> int:
        return sum(d.stored_bytes for d in self.databases)


def copy_file_name(db: str, encrypted: bool = False) -> str:
    return db + COPY_SUFFIX + (SEALED_SUFFIX if encrypted else "")


def key_id(manifest: Manifest) -> str | None:
    """The id of the key the set's copies are sealed with; None when stored in clear."""
    return None if manifest.encryption is None else parse_scheme(manifest.encryption)


def set_name(stamp: str, member: str, lsn: int) -> str:
    """Directory name of a complete set; ``stamp`` is UTC as ``YYYYmmddTHHMMSSZ``."""
    if not _STAMP.fullmatch(stamp):
        raise BackupError(f"backup time stamp {stamp!r} is not YYYYmmddTHHMMSSZ (UTC)")
    return f"{stamp}-{member}-lsn{lsn}"


def partial_name(name: str) -> str:
    """Directory name of a set while it is being written."""
    return PARTIAL_PREFIX + name


def is_set_name(name: str) -> bool:
    """Whether ``name`` can be a complete set's directory (not hidden, well formed)."""
    return not name.startswith(".") and _SET_NAME.fullmatch(name) is not None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Manifest)


def encode(manifest: Manifest) -> bytes:
    """The manifest as indented JSON (read by people as well as by restore)."""
    validate(manifest)
    return msgspec.json.format(_encoder.encode(manifest), indent=2) + b"\n"


def decode(data: bytes, *, where: str = "manifest.json") -> Manifest:
    """Parse and validate a manifest; ``where`` names the file in the error."""
    try:
        manifest = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise BackupError(
            f"{where} is not a valid backup manifest: {exc}; the set cannot be trusted "
            "(take a new backup, or restore from another set)"
        ) from exc
    try:
        validate(manifest)
    except BackupError as exc:
        raise BackupError(f"{where}: {exc}") from exc
    return manifest


def problems(manifest: Manifest) -> list[str]:
    """Every inconsistency in ``manifest``, as sentences; empty when sound."""
    found: list[str] = []
    if manifest.format != FORMAT:
        found.append(
            f"format {manifest.format} is not supported (this release reads format {FORMAT})"
        )
    for field, value in (("mirror", manifest.mirror), ("member", manifest.member)):
        if not _SAFE.fullmatch(value):
            found.append(f"{field} {value!r} is not a plain name")
    if manifest.epoch < 0:
        found.append(f"epoch {manifest.epoch} is negative")
    if manifest.lsn < 0:
        found.append(f"lsn {manifest.lsn} is negative")
    if manifest.finished_at < manifest.taken_at:
        found.append(f"finished_at {manifest.finished_at} is before taken_at {manifest.taken_at}")
    if manifest.status == "verified" and manifest.problem is not None:
        found.append(f"status is verified but a problem is recorded: {manifest.problem}")
    if manifest.status == "failed" and not manifest.problem:
        found.append("status is failed but no problem is recorded")
    if manifest.encryption is not None:
        try:
            parse_scheme(manifest.encryption)
        except BackupError as exc:
            found.append(exc.message)
    if not manifest.databases:
        found.append("it lists no database")
    seen: set[str] = set()
    for copy in manifest.databases:
        found.extend(
            f"database {copy.name!r}: {p}"
            for p in _copy_problems(copy, manifest.encryption is not None)
        )
        if copy.name in seen:
            found.append(f"database {copy.name!r} is listed twice")
        seen.add(copy.name)
    if manifest.status == "verified":
        found.extend(
            f"status is verified but database {c.name!r} has integrity {c.integrity!r}"
            for c in manifest.databases
            if c.integrity != INTEGRITY_OK
        )
    return found


def _copy_problems(copy: DatabaseCopy, encrypted: bool) -> list[str]:
    found: list[str] = []
    if not _SAFE.fullmatch(copy.name):
        found.append("the name is not a plain name")
    if copy.file != copy_file_name(copy.name, encrypted):
        found.append(f"file {copy.file!r} should be {copy_file_name(copy.name, encrypted)!r}")
    if copy.lsn < 0:
        found.append(f"lsn {copy.lsn} is negative")
    if copy.bytes < 0 or copy.stored_bytes < 0:
        found.append("a size is negative")
    for field, value in (("sha256", copy.sha256), ("raw_sha256", copy.raw_sha256)):
        if not _HEX64.fullmatch(value):
            found.append(f"{field} {value!r} is not 64 lowercase hex digits")
    return found


def validate(manifest: Manifest) -> None:
    """Raise :class:`BackupError` naming every inconsistency in ``manifest``."""
    found = problems(manifest)
    if found:
        raise BackupError("the backup manifest is inconsistent: " + "; ".join(found))
