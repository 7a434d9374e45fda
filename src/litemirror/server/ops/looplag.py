"""How late the member's event loop runs a timer: the figure heartbeats depend on.

Peer heartbeats, the arbiter session and replication acknowledgements all
run on the member's one event loop; if client work held the loop for longer
than ``mirror.qos_timeout_ms``, the peer would declare this member lost and
take over. :class:`LoopLag` measures it the way a heartbeat feels it: a timer
that should fire every :data:`INTERVAL_S`, and how much later it does. The
member shows the figures in ``status`` (``loop_lag_ms``) and ``/metrics``
(``litemirror_event_loop_lag_seconds``); the security tests assert them.
"""

from __future__ import annotations

import asyncio
import time

#: The timer's period: as often as a short heartbeat, cheap when idle.
INTERVAL_S = 0.05
#: ``recent`` is the worst lag within this many seconds.
WINDOW_S = 60


class LoopLag:
    """The event loop's lag: now, worst over the last minute, worst since start."""

    def __init__(self) -> None:
        self.last_s = 0.0
        self.max_s = 0.0
        #: Worst lag of each second of the window, by second (a ring).
        self._seconds: dict[int, float] = {}

    def observe(self, now: float, lag: float) -> None:
        self.last_s = lag
        self.max_s = max(self.max_s, lag)
        second = int(now)
        self._seconds[second] = max(self._seconds.get(second, 0.0), lag)
        if len(self._seconds) > WINDOW_S + 1:
            for old in [s for s in self._seconds if s <= second - WINDOW_S]:
                del self._seconds[old]

    def recent_s(self, now: float) -> float:
        """The worst lag within the last WINDOW_S seconds."""
        since = int(now) - WINDOW_S
        return max((lag for s, lag in self._seconds.items() if s > since), default=0.0)

    def status(self, now: float | None = None) -> dict[str, float]:
        now = time.monotonic() if now is None else now
        return {
            "last_ms": round(self.last_s * 1000, 1),
            "max_1m_ms": round(self.recent_s(now) * 1000, 1),
            "max_ms": round(self.max_s * 1000, 1),
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Measure until ``stop`` is set."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            due = loop.time() + INTERVAL_S
            await asyncio.sleep(INTERVAL_S)
            now = loop.time()
            self.observe(time.monotonic(), max(0.0, now - due))
