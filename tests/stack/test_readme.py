"""The README is a newcomer's first five minutes: every setting explained, every link live."""

from __future__ import annotations

import re
from pathlib import Path

from settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_opens_with_the_two_commands() -> None:
    first_block = README.split("```", 2)[1]
    assert "make dev" in first_block and "make test" in first_block


def test_every_setting_is_explained() -> None:
    names = {(field.validation_alias or name).upper()  # type: ignore[union-attr]
             for name, field in Settings.model_fields.items()}
    missing = sorted(name for name in names if f"`{name}`" not in README)
    assert not missing, f"README's configuration table lacks {missing}"


def test_local_links_point_at_files() -> None:
    targets = re.findall(r"\]\((?!https?://)([^)#]+)", README)
    assert "docs/testing.md" in targets
    missing = sorted(t for t in targets if not (ROOT / t).exists())
    assert not missing, f"README links to files that do not exist: {missing}"
