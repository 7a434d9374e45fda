"""The receiver a following member runs, and its task: started and stopped by
:class:`~.transitions.Transitions` (the :class:`~.ports.ReplicaLink` port).

The member reads :attr:`ReceiverLink.receiver` (status, horizon, read-your-
writes); only the transitions start and stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar


class Receiving(Protocol):
    """What the link needs of a receiver (``stream/receiver.py``)."""

    #: Where the receiver appends to the journal (its one writer while following).
    @property
    def journal_thread(self) -> ThreadPoolExecutor: ...

    def run(self) -> Coroutine[Any, Any, None]: ...


R = TypeVar("R", bound=Receiving)


class ReceiverLink(Generic[R]):
    """Runs at most one receiver; ``make`` builds a new one each time following starts."""

    def __init__(self, make: Callable[[], R]) -> None:
        self._make = make
        #: The running receiver, or None while not following.
        self.receiver: R | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def following(self) -> bool:
        return self.receiver is not None

    def start(self) -> None:
        if self.receiver is not None:
            return
        self.receiver = self._make()
        self._task = asyncio.get_running_loop().create_task(self.receiver.run())

    async def stop(self) -> None:
        rcv, task = self.receiver, self._task
        if rcv is None:
            return
        self.receiver = None
        self._task = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # Let an append already handed to the receiver's journal thread finish.
        await asyncio.get_running_loop().run_in_executor(rcv.journal_thread, time.sleep, 0)
        rcv.journal_thread.shutdown(wait=True)
