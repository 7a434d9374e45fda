"""Connection admission (pure): caps per class, host and user; eviction; deadlines; moves."""

from __future__ import annotations

import pytest

from litemirror.security.admission import Admission, Admitted, Caps, Kind, Refused

SMALL = Caps(
    max_connections=4,
    max_connections_per_host=3,
    max_connections_per_user=2,
    max_handshakes=3,
    max_handshakes_per_host=2,
    max_anonymous=3,
    max_anonymous_per_host=2,
    http_max_connections=3,
    http_max_connections_per_host=2,
    handshake_timeout=5.0,
    anonymous_timeout=10.0,
)


def ticket(a: Admission, host: str, now: float = 0.0) -> int:
    got = a.arrive(host, now)
    assert isinstance(got, Admitted), got
    return got.ticket


def refused_key(result: object) -> str | None:
    return result.key if isinstance(result, Refused) else None


# (steps, expected refusal key of the last step). A step: (host, kind to become, user).
CASES: list[tuple[str, list[tuple[str, Kind, str | None]], str | None]] = [
    ("anonymous per host", [("h1", Kind.ANONYMOUS, None)] * 3, "limits.max_anonymous_per_host"),
    (
        "anonymous overall",
        [("h1", Kind.ANONYMOUS, None), ("h2", Kind.ANONYMOUS, None)] * 2,
        "limits.max_anonymous",
    ),
    (
        "clients per user, third",
        [("h1", Kind.CLIENT, "u"), ("h2", Kind.CLIENT, "u"), ("h3", Kind.CLIENT, "u")],
        "limits.max_connections_per_user",
    ),
    (
        "clients per host",
        [("h1", Kind.CLIENT, None)] * 4,
        "limits.max_connections_per_host",
    ),
    (
        "clients overall",
        [(f"h{i}", Kind.CLIENT, None) for i in range(5)],
        "limits.max_connections",
    ),
    ("members are never refused", [("h1", Kind.MEMBER, None)] * 20, None),
    (
        "anonymous full does not keep clients out",
        [
            ("h1", Kind.ANONYMOUS, None),
            ("h2", Kind.ANONYMOUS, None),
            ("h3", Kind.ANONYMOUS, None),
            ("h1", Kind.CLIENT, "u"),
        ],
        None,
    ),
]


@pytest.mark.parametrize(("name", "steps", "expected"), CASES, ids=[c[0] for c in CASES])
def test_caps(name: str, steps: list[tuple[str, Kind, str | None]], expected: str | None) -> None:
    """Every step but the last is admitted; the last is refused by ``expected`` (None: admitted)."""
    a = Admission(SMALL)
    results = [a.become(ticket(a, host), kind, 1.0, user) for host, kind, user in steps]
    assert all(r is None for r in results[:-1]), results
    assert refused_key(results[-1]) == expected, results[-1]


def test_a_refusal_names_the_limit_and_its_value_and_leaves_the_ticket_in_its_class() -> None:
    a = Admission(SMALL)
    for _ in range(2):
        assert a.become(ticket(a, "10.0.0.5"), Kind.ANONYMOUS, 0.0) is None
    t = ticket(a, "10.0.0.5")
    r = a.become(t, Kind.ANONYMOUS, 0.0)
    assert isinstance(r, Refused)
    assert "10.0.0.5" in r.message and "limits.max_anonymous_per_host = 2" in r.message
    assert "log in" in r.message  # says what to do
    assert a.kind_of(t) is Kind.HANDSHAKE
    assert a.refused["limits.max_anonymous_per_host"] == 1
    # Logging in still works for the refused connection's host.
    assert a.become(t, Kind.CLIENT, 0.0, "alice") is None


def test_handshakes_per_host_are_refused_but_overall_the_oldest_makes_room() -> None:
    a = Admission(SMALL)
    first = ticket(a, "h1", 0.0)
    ticket(a, "h1", 1.0)
    assert refused_key(a.arrive("h1", 2.0)) == "limits.max_handshakes_per_host"
    third = ticket(a, "h2", 3.0)
    got = a.arrive("h3", 4.0)  # all three places taken: the oldest (first) goes
    assert isinstance(got, Admitted) and got.evicted == (first,)
    assert a.kind_of(first) is None and a.kind_of(third) is Kind.HANDSHAKE
    assert a.count(Kind.HANDSHAKE) == 3


def test_a_connection_that_said_hello_is_not_cut_while_it_logs_in() -> None:
    """A login the back-off slows down outlives the handshake deadline; silent ones do not."""
    a = Admission(SMALL)
    silent = ticket(a, "h1", 0.0)
    logging_in = ticket(a, "h2", 0.0)
    a.hello(logging_in)
    assert a.expired(100.0) == [(silent, Kind.HANDSHAKE)]
    assert a.kind_of(logging_in) is Kind.HANDSHAKE  # still counted
    # Making room takes a silent connection first, even a younger one.
    newer_silent = ticket(a, "h3", 101.0)
    ticket(a, "h1", 102.0)
    got = a.arrive("h2", 103.0)
    assert isinstance(got, Admitted) and got.evicted == (newer_silent,)


def test_a_connection_that_logged_in_no_longer_counts_as_a_handshake() -> None:
    a = Admission(SMALL)
    for i in range(10):
        t = ticket(a, f"h{i % 2}")
        assert a.become(t, Kind.MEMBER, 0.0) is None
    assert a.count(Kind.HANDSHAKE) == 0 and a.count(Kind.MEMBER) == 10


def test_deadlines_close_handshakes_and_anonymous_connections_in_order() -> None:
    a = Admission(SMALL)
    slow = ticket(a, "h1", 0.0)
    anon = ticket(a, "h2", 1.0)
    a.become(anon, Kind.ANONYMOUS, 2.0)
    client = ticket(a, "h3", 1.0)
    a.become(client, Kind.CLIENT, 2.0, "u")
    member = ticket(a, "h3", 1.0)
    a.become(member, Kind.MEMBER, 2.0)
    assert a.expired(4.9) == []
    assert a.expired(5.0) == [(slow, Kind.HANDSHAKE)]
    assert a.expired(11.9) == []
    # Pinging does not help: the anonymous deadline runs from its Hello.
    assert a.expired(12.0) == [(anon, Kind.ANONYMOUS)]
    assert a.expired(10_000.0) == []  # clients and members have no deadline here
    assert a.counts() == {"handshake": 0, "anonymous": 0, "client": 1, "member": 1, "http": 0}


def test_leave_gives_every_count_back_and_is_idempotent() -> None:
    a = Admission(SMALL)
    t = ticket(a, "h1")
    a.become(t, Kind.CLIENT, 0.0, "u")
    a.leave(t)
    a.leave(t)
    assert a.counts() == {k.value: 0 for k in Kind}
    assert not a._per_host and not a._per_user  # nothing left to grow without bound
    # An unknown ticket (already evicted) is left alone.
    assert a.become(t, Kind.CLIENT, 0.0, "u") is None and a.kind_of(t) is None


def test_moves_follow_the_table() -> None:
    a = Admission(SMALL)
    t = ticket(a, "h1")
    a.become(t, Kind.ANONYMOUS, 0.0)
    assert a.become(t, Kind.CLIENT, 0.0, "u") is None  # an admin action that logged in
    assert a.become(t, Kind.CLIENT, 0.0, "v") is None  # another user: keeps its place
    with pytest.raises(ValueError, match="cannot become anonymous"):
        a.become(t, Kind.ANONYMOUS, 0.0)
    m = ticket(a, "h1")
    a.become(m, Kind.MEMBER, 0.0)
    assert a.become(m, Kind.ANONYMOUS, 0.0) is None and a.kind_of(m) is Kind.MEMBER
    h = a.arrive("h1", 0.0, http=True)
    assert isinstance(h, Admitted)
    with pytest.raises(ValueError):
        a.become(h.ticket, Kind.CLIENT, 0.0)


def test_http_connections_have_their_own_caps() -> None:
    a = Admission(SMALL)
    assert isinstance(a.arrive("h1", 0.0, http=True), Admitted)
    assert isinstance(a.arrive("h1", 0.0, http=True), Admitted)
    assert refused_key(a.arrive("h1", 0.0, http=True)) == "limits.http_max_connections_per_host"
    assert isinstance(a.arrive("h2", 0.0, http=True), Admitted)
    assert refused_key(a.arrive("h3", 0.0, http=True)) == "limits.http_max_connections"
    assert a.count(Kind.HANDSHAKE) == 0  # the member port's places are untouched
