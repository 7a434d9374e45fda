"""The narrow things the member's components are given instead of the member itself.

A component's constructor names exactly what it uses: a callable, or one of
the small protocols below. The wiring module (:mod:`.node.wiring`) is the only
place that knows which object answers each; a component test passes fakes
from :mod:`litemirror.testing`.

Ports that only one part of the server uses live beside it
(``stream/ports.py``, ``ha/ports.py``, ...); this module holds the ones
shared across parts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .role import RoleSnapshot

#: The member's current role snapshot (see :mod:`.role`).
RoleView = Callable[[], RoleSnapshot]


class EventSink(Protocol):
    """Records an event (events.jsonl, status, metrics, the notifier)."""

    def __call__(self, kind: str, message: str, severity: str = "info", **data: Any) -> None: ...
