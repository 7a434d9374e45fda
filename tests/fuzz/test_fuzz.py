"""A short fuzz of every parser in `make test`; the long runs use ``python -m tests.fuzz.run``."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from litemirror.journal import record as rec

from .mutate import fixup
from .run import CORPUS, CRASHES, KNOWN, fuzz, run_one
from .targets import TARGETS, Finding, seeds

SHORT = 3000


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_short_fuzz_finds_nothing_new(target: str) -> None:
    report = fuzz(target, SHORT, seed=20240601)
    assert report.iterations >= SHORT
    assert not report.new_findings(), (
        report.summary()
        + "\n\n"
        + "\n\n".join(report.findings[s][2] for s in report.new_findings())
    )
    # The engine reaches more than one way of answering, or it is not fuzzing.
    assert len(report.outcomes) > 10


def _corpus() -> list[tuple[str, Path]]:
    return [
        (t, p)
        for t in sorted(TARGETS)
        if (CORPUS / t).is_dir()
        for p in sorted((CORPUS / t).iterdir())
    ]


def test_every_target_has_a_seeded_corpus() -> None:
    for target in TARGETS:
        files = {p.read_bytes() for p in (CORPUS / target).iterdir()}
        assert set(seeds(target)) <= files, (
            f"run: python -m tests.fuzz.run --target {target} --write-seeds"
        )


@pytest.mark.parametrize(("target", "path"), _corpus(), ids=lambda v: getattr(v, "name", v))
def test_corpus_input_meets_the_contract(target: str, path: Path) -> None:
    try:
        run_one(TARGETS[target], path.read_bytes(), timeout=5.0)
    except Finding as f:
        assert f.signature.startswith(KNOWN[target]), f.what


def _crashes() -> list[tuple[str, Path]]:
    if not CRASHES.is_dir():
        return []
    return [(d.name, p) for d in sorted(CRASHES.iterdir()) for p in sorted(d.glob("*.bin"))]


@pytest.mark.parametrize(("target", "path"), _crashes(), ids=lambda v: getattr(v, "name", v))
def test_saved_crash_input_gets_a_documented_error(
    target: str, path: Path, request: pytest.FixtureRequest
) -> None:
    """Each saved finding, replayed. Known (reported, unfixed) ones are strict xfails:
    once the parser is fixed the test passes unexpectedly and fails the run, as a
    reminder to drop the signature from KNOWN."""
    described = path.with_suffix(".txt").read_text()
    signature = re.search(r"^signature: (.+)$", described, re.M)
    assert signature is not None
    if signature.group(1).startswith(KNOWN.get(target, ())):
        request.applymarker(
            pytest.mark.xfail(strict=True, reason=f"reported: {signature.group(1)}")
        )
    run_one(TARGETS[target], path.read_bytes(), timeout=5.0)


def test_a_hang_is_a_finding() -> None:
    def spins(data: bytes) -> str:
        while True:
            pass

    with pytest.raises(Finding) as caught:
        run_one(spins, b"", timeout=0.2)
    assert caught.value.signature == "hang"


def test_an_undocumented_exception_is_a_finding() -> None:
    # Hand-made: a str that is not UTF-8 in a client Hello (msgspec raises
    # UnicodeDecodeError there, see KNOWN); proves the target reports it.
    body = b"\x83\xa1t\xa5hello\xa7version\x01\xa8database\xa2\xff\xfe"
    data = bytes([0, 0]) + len(body).to_bytes(4, "big") + body
    with pytest.raises(Finding) as caught:
        run_one(TARGETS["frames"], data, timeout=5.0)
    assert caught.value.signature.startswith("UnicodeDecodeError@framing.py")


def test_fixup_lets_a_mutated_record_past_its_checksums() -> None:
    good = rec.encode_record(rec.Record(5, 1, rec.RecordKind.MARKER, "db", 0, b"x"))
    mutated = bytearray(good)
    mutated[12:20] = (77).to_bytes(8, "little")  # a new LSN, checksums now wrong
    assert rec.scan(bytes(mutated)).problem is not None
    repaired = fixup("records", b"\x00" + bytes(mutated), random.Random(0))[1:]
    result = rec.scan(repaired)
    assert result.problem is None and result.records[0].lsn == 77
