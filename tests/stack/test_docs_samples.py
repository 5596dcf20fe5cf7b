"""The docs stand alone and their samples are what the commands print: a sample that a change
makes stale fails here instead of misleading the next reader."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
# A shell sample: a fenced block whose first line is `$ loyalloop …`, the rest its output.
SAMPLE = re.compile(r"```\n\$ (loyalloop [^\n]+)\n(.*?)```", re.S)
# Commands whose output is the same on every machine (no times, ids or figures in it).
STABLE = ("loyalloop templates check",)


def _samples() -> list[tuple[str, str, str]]:
    found = []
    for doc in DOCS:
        for command, output in SAMPLE.findall(doc.read_text()):
            if command.startswith(STABLE):
                found.append((doc.name, command, output))
    return found


def test_the_docs_hold_samples_to_check() -> None:
    assert any(command == "loyalloop templates check" for _, command, _ in _samples())


@pytest.mark.parametrize(("doc", "command", "output"), _samples(),
                         ids=[f"{d}: {c}" for d, c, _ in _samples()])
def test_a_sample_is_what_the_command_prints(doc: str, command: str, output: str) -> None:
    loyalloop = Path(sys.executable).with_name("loyalloop")
    ran = subprocess.run([str(loyalloop), *command.split()[1:]], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=False)
    assert ran.stdout + ran.stderr == output, f"{doc}'s sample of `{command}` is stale"


def test_the_docs_stand_alone() -> None:
    """Nothing points outside the repository: a clone holds everything its docs name."""
    outside = [f"{doc.relative_to(ROOT)}: {line.strip()}"
               for doc in DOCS for line in doc.read_text().splitlines()
               if "../shared" in line or "SPEC.md" in line]
    assert outside == []
