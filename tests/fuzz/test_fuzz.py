"""A short fuzz of every parser in `make test`; the long runs use ``python -m tests.fuzz.run``."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from litemirror.journal import record as rec

from .mutate import fixup
from .run import CORPUS, CRASHES, KNOWN, fuzz, run_one
from .targets import TARGETS, Finding, _unexpected, seeds

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
def test_saved_crash_input_gets_a_documented_error(target: str, path: Path) -> None:
    """Each saved finding, replayed. A known one (reported, not fixed yet) is an
    expected failure; once the parser is fixed it passes, and its signature can
    be dropped from KNOWN."""
    described = path.with_suffix(".txt").read_text()
    signature = re.search(r"^signature: (.+)$", described, re.M)
    assert signature is not None
    try:
        run_one(TARGETS[target], path.read_bytes(), timeout=5.0)
    except Finding as f:
        if f.signature.startswith(KNOWN.get(target, ())):
            pytest.xfail(f"reported, not fixed yet: {f.signature}")
        raise


def test_a_hang_is_a_finding() -> None:
    def spins(data: bytes) -> str:
        while True:
            pass

    with pytest.raises(Finding) as caught:
        run_one(spins, b"", timeout=0.2)
    assert caught.value.signature == "hang"


def test_an_undocumented_exception_is_a_finding_with_a_stable_signature() -> None:
    def parse(data: bytes) -> str:
        return str(int(data))  # ValueError: not one of the documented errors

    def target(data: bytes) -> str:
        try:
            return parse(data)
        except Exception as exc:
            raise _unexpected(exc) from exc

    signatures = set()
    for data in (b"x", b"yy"):
        with pytest.raises(Finding) as caught:
            run_one(target, data, timeout=5.0)
        signatures.add(caught.value.signature)
        assert "ValueError" in caught.value.what and "int(data)" in caught.value.what
    assert len(signatures) == 1 and signatures.pop().startswith("ValueError@test_fuzz.py:")


def test_fixup_lets_a_mutated_record_past_its_checksums() -> None:
    good = rec.encode_record(rec.Record(5, 1, rec.RecordKind.MARKER, "db", 0, b"x"))
    mutated = bytearray(good)
    mutated[12:20] = (77).to_bytes(8, "little")  # a new LSN, checksums now wrong
    assert rec.scan(bytes(mutated)).problem is not None
    repaired = fixup("records", b"\x00" + bytes(mutated), random.Random(0))[1:]
    result = rec.scan(repaired)
    assert result.problem is None and result.records[0].lsn == 77
