"""Back-off for failed logins, per client host (pure: the caller passes the time).

A host may fail ``free`` logins within ``window_s`` without consequence; from
then on each attempt first waits ``base_s`` doubled per further failure, at
most ``max_s``. A success clears the host. So a mistyped password costs
nothing, while guessing from one host slows to one try every ``max_s``
seconds. At most ``max_hosts`` hosts are remembered (the oldest go first), so
a flood of addresses cannot grow memory without bound.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class LoginThrottle:
    free: int = 5
    window_s: float = 60.0
    base_s: float = 0.25
    max_s: float = 10.0
    max_hosts: int = 10_000
    #: host -> (failures in the current window, time of the first one)
    _failures: OrderedDict[str, tuple[int, float]] = field(default_factory=OrderedDict)

    def _count(self, host: str, now: float) -> int:
        entry = self._failures.get(host)
        if entry is None:
            return 0
        count, since = entry
        if now - since > self.window_s and count <= self.free:
            del self._failures[host]
            return 0
        return count

    def delay(self, host: str, now: float) -> float:
        """Seconds to wait before checking the next login from ``host``."""
        over = self._count(host, now) - self.free
        if over < 0:
            return 0.0
        return min(self.max_s, self.base_s * (2.0**over))

    def failed(self, host: str, now: float) -> int:
        """Record a failed login; returns the host's failures in the window."""
        count = self._count(host, now)
        since = self._failures[host][1] if count else now
        self._failures[host] = (count + 1, since)
        self._failures.move_to_end(host)
        while len(self._failures) > self.max_hosts:
            self._failures.popitem(last=False)
        return count + 1

    def succeeded(self, host: str) -> None:
        self._failures.pop(host, None)
