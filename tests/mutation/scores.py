"""The mutation score of each module mutmut ran, from `mutants/**/*.py.meta`:
`.venv/bin/python -m tests.mutation.scores [mutants]` (after `make mutation`).

Score = killed / (checked mutants); a timeout counts as killed (the mutant hung a lifecycle and
the test's timeout caught it). `no tests` are mutants no selected test reaches (listed, and in
docs/testing.md); `not checked` ones were not run yet (an interrupted or partial run)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

KILLED = {"killed", "timeout", "caught by type check"}


def scores(root: Path) -> list[tuple[str, Counter[str]]]:
    rows = []
    for meta in sorted(root.rglob("*.py.meta")):
        exit_codes = json.loads(meta.read_text())["exit_code_by_key"]
        if exit_codes:
            counts = Counter(status_by_exit_code[code] for code in exit_codes.values())
            rows.append((str(meta.relative_to(root)).removesuffix(".meta"), counts))
    return rows


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "mutants")
    print(f"{'module':28} {'killed':>7} {'checked':>8} {'score':>6}  survived  no-tests  unchecked")
    for module, counts in scores(root):
        killed = sum(counts[s] for s in KILLED)
        checked = killed + counts["survived"] + counts["suspicious"]
        score = f"{100 * killed / checked:5.1f}%" if checked else "    -"
        print(f"{module:28} {killed:7} {checked:8} {score:>6}  {counts['survived']:8}"
              f"  {counts['no tests']:8}  {counts['not checked']:9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
