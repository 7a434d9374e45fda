"""One database of a member, built alone over a real file and a real journal.

For tests and benchmarks of the write path that need a :class:`Database`
without a member around it: the file is created as a member creates it, and
the settings a member would take from its config get small fixed values
unless the caller gives its own.
"""

from __future__ import annotations

from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from litemirror.server.storage.database import Database, open_writer
from litemirror.server.storage.journal_writer import JournalWriter


def standalone_database(
    path: Path, *, executor: Executor, journal: JournalWriter, **settings: Any
) -> Database:
    """A closed :class:`Database` named after ``path`` (call ``open()``), at epoch 1.

    ``settings`` override the defaults below or add any other keyword of
    ``Database`` (``replicate``, ``read_executor``, ...).
    """
    open_writer(str(path)).close()
    options: dict[str, Any] = {
        "epoch": lambda: 1,
        "group_max": 64,
        "readers": 2,
        "txn_idle_timeout": 30,
        "checkpoint_pages": 1000,
        "on_commit": lambda _name, _lsn: None,
        **settings,
    }
    return Database(path.stem, path, executor=executor, journal=journal, **options)
