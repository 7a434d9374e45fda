"""Back-off for failed logins, per client host and per user name (pure: the caller passes the time).

Theory of operation
-------------------
Every failed login adds one to three *scores*: the client host's, the user
name's (whatever host it came from) and the pair's (that name from that
host). Scores fade: each halves every ``half_life_s`` seconds, so failures
that stop are forgotten by degrees, and a guesser who keeps going never is.

What an attempt waits before its password is checked (:meth:`plan`):

* **the host's wait**: a host may fail ``free`` logins at no cost; from then
  on each attempt waits ``base_s`` doubled per further failure, at most
  ``max_s``. The shell serialises the attempts of a host (one waits and is
  checked at a time), so parallel connections do not multiply the rate:
  guessing from one host falls to about one password every ``max_s``.
* **the user's wait**: a user name may fail ``user_free`` logins (from all
  hosts together) at no cost; from then on each attempt *for that name*
  waits ``base_s`` doubled per further failure, at most ``user_max_s``.
  This bounds guessing one password from many hosts. The cap is low on
  purpose: the real user waits it too, so an attacker can slow a user's
  login by at most ``user_max_s`` — never lock the user out.
* **the user's turn**: an attempt from a host that itself failed recently
  (score ≥ 0.5, see :meth:`suspect`) is also serialised per user name, so
  many guessing hosts take turns on one name. An attempt from a host with no
  recent failure skips that queue: the real user, logging in from its usual
  host while others guess its password, waits only the user's wait.

A success forgives exactly what it explains: the failures of that user name
from that host (the pair's score is taken off the host's and the name's).
So a user who mistyped and then got it right is not held back, while an
attacker's own successful login (its read account) clears nothing of its
guesses at other names.

Memory is bounded: at most ``max_entries`` hosts, names and pairs each are
remembered (the least recently failed go first), so a flood of addresses or
invented names cannot grow it. Forgetting a pair only means a later success
cannot forgive it; forgetting a host or name forgets its back-off, which
takes ``max_entries`` other failing hosts or names, each slowed itself.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

#: A score below this is forgotten (the entry dropped).
_NEGLIGIBLE = 0.05
#: A host whose score is at least this failed a login within about one half-life.
SUSPECT = 0.5


@dataclass(frozen=True, slots=True)
class Plan:
    """What one login attempt waits before its password is checked."""

    #: Seconds to wait in the host's turn.
    host_wait_s: float
    #: Seconds to wait before the check, for the user name's failures.
    user_wait_s: float
    #: Whether the attempt must also take its turn in the user name's queue.
    user_turn: bool

    @property
    def host_throttled(self) -> bool:
        return self.host_wait_s > 0


@dataclass(frozen=True, slots=True)
class Failure:
    """The scores after a failure, and which back-off it has just started."""

    host_failures: int
    user_failures: int
    #: With this failure the host's next attempts start to wait.
    host_now_throttled: bool
    #: With this failure the user name's next attempts start to wait.
    user_now_throttled: bool


class _Scores:
    """Fading counts per key, bounded in number (least recently touched go first)."""

    def __init__(self, half_life_s: float, max_entries: int) -> None:
        self.half_life_s = half_life_s
        self.max_entries = max_entries
        #: key -> (score, time it was last brought up to date)
        self._entries: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> float:
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        score, at = entry
        # A clock that went back (the caller's monotonic time never does) counts as no time.
        faded: float = score * 0.5 ** (max(0.0, now - at) / self.half_life_s)
        if faded < _NEGLIGIBLE:
            del self._entries[key]
            return 0.0
        return faded

    def add(self, key: str, amount: float, now: float) -> float:
        score = max(0.0, self.get(key, now) + amount)
        if score < _NEGLIGIBLE:
            self._entries.pop(key, None)
            return 0.0
        self._entries[key] = (score, now)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return score

    def pop(self, key: str, now: float) -> float:
        score = self.get(key, now)
        self._entries.pop(key, None)
        return score


def _whole(score: float) -> int:
    """About how many failures a faded score stands for (rounded half up)."""
    return math.floor(score + 0.5)


def _backoff(score: float, free: int, base_s: float, cap_s: float) -> float:
    """Nothing below ``free`` whole failures, then ``base_s`` doubling each, up to ``cap_s``."""
    over = _whole(score) - free
    if over < 0:
        return 0.0
    return min(cap_s, base_s * 2.0 ** min(over, 64))


@dataclass
class LoginThrottle:
    free: int = 5
    user_free: int = 10
    base_s: float = 0.25
    max_s: float = 10.0
    user_max_s: float = 5.0
    half_life_s: float = 120.0
    max_entries: int = 10_000
    _hosts: _Scores = field(init=False, repr=False)
    _users: _Scores = field(init=False, repr=False)
    _pairs: _Scores = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._hosts = _Scores(self.half_life_s, self.max_entries)
        self._users = _Scores(self.half_life_s, self.max_entries)
        self._pairs = _Scores(self.half_life_s, self.max_entries)

    @staticmethod
    def _pair(host: str, user: str) -> str:
        # NUL cannot be in a host address; a name with one is refused before it gets here.
        return f"{host}\0{user}"

    def host_failures(self, host: str, now: float) -> float:
        return self._hosts.get(host, now)

    def user_failures(self, user: str, now: float) -> float:
        return self._users.get(user, now)

    def suspect(self, host: str, now: float) -> bool:
        """Whether ``host`` failed a login recently (its attempts then queue per user name)."""
        return self._hosts.get(host, now) >= SUSPECT

    def plan(self, host: str, user: str, now: float) -> Plan:
        """What an attempt from ``host`` to log in as ``user`` waits before its check."""
        return Plan(
            host_wait_s=_backoff(self._hosts.get(host, now), self.free, self.base_s, self.max_s),
            user_wait_s=_backoff(
                self._users.get(user, now), self.user_free, self.base_s, self.user_max_s
            ),
            user_turn=self.suspect(host, now),
        )

    def failed(self, host: str, user: str, now: float) -> Failure:
        """Record a failed login of ``user`` from ``host``."""
        h0, u0 = _whole(self._hosts.get(host, now)), _whole(self._users.get(user, now))
        h = _whole(self._hosts.add(host, 1.0, now))
        u = _whole(self._users.add(user, 1.0, now))
        self._pairs.add(self._pair(host, user), 1.0, now)
        return Failure(
            host_failures=h,
            user_failures=u,
            host_now_throttled=h0 < self.free <= h,
            user_now_throttled=u0 < self.user_free <= u,
        )

    def succeeded(self, host: str, user: str, now: float) -> None:
        """``user`` logged in from ``host``: forgive that pair's failures, and only those."""
        forgiven = self._pairs.pop(self._pair(host, user), now)
        if forgiven:
            self._hosts.add(host, -forgiven, now)
            self._users.add(user, -forgiven, now)
