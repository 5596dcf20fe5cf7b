"""Histories recorded now, by today's code, not only the files committed in tests/histories/: the
recorder runs every scenario into a temporary directory, and each history it writes must hold
none of the customers' or the creator's emails and names, and stay within the size bounds the
committed ones are held to. A change that puts personal data or a loop into a workflow's
history fails here before anyone records it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.histories.record import SCENARIOS, record
from tests.replay.test_history_size import assert_small, sizes
from tests.security.test_no_personal_data_in_histories import personal_data_in


async def test_freshly_recorded_histories_hold_no_personal_data_and_stay_small(tmp_path: Path):
    written = await record("fresh", list(SCENARIOS), tmp_path)

    recorded = {path.name.split("--")[1] for path in written}
    assert recorded == set(SCENARIOS)
    leaks = {
        path.name: found
        for path in written
        if (found := personal_data_in(json.loads(path.read_text())))
    }
    assert leaks == {}
    assert_small(sizes(tmp_path))
    # the long scenario continued-as-new: its runs are bounded one by one
    assert any("many_repeats_continue_as_new" in p.name and "--run2" in p.name for p in written)
