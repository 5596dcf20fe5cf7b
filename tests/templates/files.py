"""Editing a test's copy of the templates the way a marketer would."""

from __future__ import annotations

from pathlib import Path


def edit(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def replace(root: Path, name: str, old: str, new: str) -> Path:
    path = root / name
    source = path.read_text(encoding="utf-8")
    assert old in source, f"{old!r} not in {name}"
    path.write_text(source.replace(old, new), encoding="utf-8")
    return path
