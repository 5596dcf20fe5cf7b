"""Fixtures for template tests: a copy of the shipped templates a test may break, and the
`loyalloop` command line run in-process."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import main
from settings import get_settings

SHIPPED = Path(__file__).resolve().parents[2] / "templates"


@pytest.fixture
def templates_copy(tmp_path: Path) -> Path:
    """The shipped templates, copied so a test can break them."""
    return Path(shutil.copytree(SHIPPED, tmp_path / "templates"))


@pytest.fixture
def loyalloop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Result]:
    """Run `loyalloop ARGS` with settings read afresh from this test's environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOYALLOOP_RULES_FILE", raising=False)
    monkeypatch.delenv("LOYALLOOP_TEMPLATES_DIR", raising=False)

    def run(*args: str) -> Result:
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(main, list(args), catch_exceptions=False)
        finally:
            get_settings.cache_clear()

    return run



@pytest.fixture
def templates_dir(templates_copy: Path) -> Path:
    """The `kit` fixture's workers render from this test's own copy, which it may edit."""
    return templates_copy
