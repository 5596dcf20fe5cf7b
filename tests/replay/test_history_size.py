"""A lifecycle's history stays small: the recorded scenarios' events and bytes, with bounds
generous enough for honest growth and tight enough to catch a loop that writes history."""

from __future__ import annotations

import json
from pathlib import Path

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
# One purchase's whole lifecycle, however it ends; the continue-as-new scenario is bounded per
# run by the workflow's own repeat limit and the server's suggestion (tests/faults).
MAX_EVENTS_PER_LIFECYCLE = 250
MAX_BYTES_PER_LIFECYCLE = 150_000
MAX_EVENTS_PER_RUN = 2_000
MAX_BYTES_PER_RUN = 1_000_000


def sizes(directory: Path = HISTORIES) -> dict[str, tuple[int, int]]:
    return {
        path.stem: (len(json.loads(path.read_text())["events"]), path.stat().st_size)
        for path in sorted(directory.glob("*.json"))
    }


def test_every_recorded_lifecycle_is_small():
    assert_small(sizes())


def assert_small(measured: dict[str, tuple[int, int]]) -> None:
    """Each single-run lifecycle within the lifecycle bound, every run within the run bound."""
    for name, (events, size) in measured.items():
        print(f"{name}: {events} events, {size} bytes")
    single = {n: v for n, v in measured.items() if "--run" not in n}
    longest = max(single, key=lambda n: single[n][0])
    events, size = single[longest]
    print(f"longest single-run lifecycle: {longest}: {events} events, {size} bytes")
    assert events <= MAX_EVENTS_PER_LIFECYCLE and size <= MAX_BYTES_PER_LIFECYCLE
    for name, (events, size) in measured.items():
        assert events <= MAX_EVENTS_PER_RUN and size <= MAX_BYTES_PER_RUN, name
