"""Reading an encryption key file (the shell of :mod:`.sealed`'s keys).

A key file holds 64 hex digits (32 random bytes) and must be readable by its
owner only: a key anyone on the host can read protects nothing, so such a file
is refused rather than used (fail closed).
"""

from __future__ import annotations

import stat
from pathlib import Path

from litemirror.errors import BackupError

from .sealed import Key, parse_key


def load_key(path: Path, setting: str = "key file") -> Key:
    """The key in ``path``; a BackupError naming ``setting`` and the file if it is unfit."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise BackupError(f"{setting}: {str(path)!r} is not a regular file")
        if st.st_mode & 0o077:
            raise BackupError(
                f"{setting}: {str(path)!r} can be read or written by other users "
                f"(mode {stat.S_IMODE(st.st_mode):o}); make it readable by its owner only: "
                f"chmod 600 {path}"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise BackupError(
            f"{setting}: {str(path)!r} does not exist; make a key with "
            f"`(umask 077; openssl rand -hex 32 > {path})`"
        ) from None
    except OSError as exc:
        raise BackupError(f"{setting}: cannot read {str(path)!r}: {exc.strerror}") from None
    return parse_key(data, f"{setting} {str(path)!r}")


def load_keys(paths: list[Path]) -> dict[str, Key]:
    """The keys of ``paths`` by key id (restore may be given old and new keys)."""
    keys: dict[str, Key] = {}
    for p in paths:
        key = load_key(p, "--key-file")
        keys[key.id] = key
    return keys


__all__ = ["load_key", "load_keys"]
