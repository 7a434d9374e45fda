"""Back-off for failed logins, per client host and per user name (pure: the caller passes the time).

Theory of operation
-------------------
Every failed login adds one to three *scores*: the client host's, the user
name's (whatever host it came from) and the pair's (that name from that
host). Scores fade: each halves every ``half_life_s`` seconds, so failures
that stop are forgotten by degrees, and a guesser who keeps going never is.

Each failure also *holds* its host and its name for a while (the back-off):

* **per host**: a host may fail ``free`` logins at no cost; from then on each
  failure holds the host for ``base_s``, doubled per further failure, at most
  ``max_s``. While a host is held, its attempts are refused *unchecked*
  (:attr:`Plan.host_retry_in_s` says when it may try again), and the shell
  checks one attempt of a host at a time, so parallel connections do not
  multiply the rate: guessing from one host falls to about one password
  every ``max_s``. The failure itself is answered at once.
* **per user name**: a name may fail ``user_free`` logins (from all hosts
  together) at no cost; from then on each failure holds the name for
  ``base_s`` doubled per further failure, at most ``user_max_s``. Attempts
  at a held name from hosts that failed recently (score ≥ 0.5, see
  :meth:`suspect`) take turns on the name, each waiting out the hold before
  its check (:attr:`Plan.user_wait_s`), so many guessing hosts get about one
  guess at a name every ``user_max_s`` together. An attempt from a host with
  no recent failure is checked at once: the real user, logging in from its
  usual host while others guess its password, is never held back by them.
  From a host that failed recently it waits its turn, each turn at most
  ``user_max_s``: slowed, never locked out.

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
    """What happens to one login attempt before its password is checked."""

    #: Above 0: the host is held; refuse the attempt unchecked, it may retry in this long.
    host_retry_in_s: float
    #: Whether the attempt takes its turn on the user name (its host failed recently).
    user_turn: bool
    #: In that turn, how long to wait before the check (what is left of the name's hold).
    user_wait_s: float


@dataclass(frozen=True, slots=True)
class Failure:
    """The scores after a failure, the holds it set, and which back-off it has just started."""

    host_failures: int
    user_failures: int
    #: How long this failure holds its host (0: still within the free allowance).
    host_hold_s: float
    #: How long it holds its user name.
    user_hold_s: float
    #: With this failure the host's attempts start to be held.
    host_now_throttled: bool
    #: With this failure the user name's attempts start to be held.
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


class _Holds:
    """Until when each key is held, bounded in number (the oldest holds go first)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._until: OrderedDict[str, float] = OrderedDict()

    def left(self, key: str, now: float) -> float:
        until = self._until.get(key)
        if until is None:
            return 0.0
        if until <= now:
            del self._until[key]
            return 0.0
        return until - now

    def hold(self, key: str, seconds: float, now: float) -> None:
        if seconds <= 0:
            self._until.pop(key, None)
            return
        self._until[key] = now + seconds
        self._until.move_to_end(key)
        while len(self._until) > self.max_entries:
            self._until.popitem(last=False)


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
    _host_holds: _Holds = field(init=False, repr=False)
    _user_holds: _Holds = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._hosts = _Scores(self.half_life_s, self.max_entries)
        self._users = _Scores(self.half_life_s, self.max_entries)
        self._pairs = _Scores(self.half_life_s, self.max_entries)
        self._host_holds = _Holds(self.max_entries)
        self._user_holds = _Holds(self.max_entries)

    @staticmethod
    def _pair(host: str, user: str) -> str:
        # NUL cannot be in a host address; a name with one is refused before it gets here.
        return f"{host}\0{user}"

    def host_failures(self, host: str, now: float) -> float:
        return self._hosts.get(host, now)

    def user_failures(self, user: str, now: float) -> float:
        return self._users.get(user, now)

    def suspect(self, host: str, now: float) -> bool:
        """Whether ``host`` failed a login recently (its attempts then take turns per name)."""
        return self._hosts.get(host, now) >= SUSPECT

    def plan(self, host: str, user: str, now: float) -> Plan:
        """What happens to an attempt from ``host`` to log in as ``user`` before its check."""
        return Plan(
            host_retry_in_s=self._host_holds.left(host, now),
            user_turn=self.suspect(host, now),
            user_wait_s=self._user_holds.left(user, now),
        )

    def failed(self, host: str, user: str, now: float) -> Failure:
        """Record a failed login of ``user`` from ``host``; it holds both for their back-off."""
        h0, u0 = _whole(self._hosts.get(host, now)), _whole(self._users.get(user, now))
        hs = self._hosts.add(host, 1.0, now)
        us = self._users.add(user, 1.0, now)
        self._pairs.add(self._pair(host, user), 1.0, now)
        host_hold = _backoff(hs, self.free, self.base_s, self.max_s)
        user_hold = _backoff(us, self.user_free, self.base_s, self.user_max_s)
        self._host_holds.hold(host, host_hold, now)
        self._user_holds.hold(user, user_hold, now)
        h, u = _whole(hs), _whole(us)
        return Failure(
            host_failures=h,
            user_failures=u,
            host_hold_s=host_hold,
            user_hold_s=user_hold,
            host_now_throttled=h0 < self.free <= h,
            user_now_throttled=u0 < self.user_free <= u,
        )

    def succeeded(self, host: str, user: str, now: float) -> None:
        """``user`` logged in from ``host``: forgive that pair's failures, and only those.

        Holds stay: a success comes after its host's hold anyway, and a name's
        hold is the guessers' doing, not this host's.
        """
        forgiven = self._pairs.pop(self._pair(host, user), now)
        if forgiven:
            self._hosts.add(host, -forgiven, now)
            self._users.add(user, -forgiven, now)
