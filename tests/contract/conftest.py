"""Prism serving SendGrid's Mail Send contract, for whole lifecycles sent through it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.prism import missing_tools, prism_mock


@pytest.fixture(scope="session")
def prism_url() -> Iterator[str]:
    missing = missing_tools()
    if missing:
        pytest.skip(f"SendGrid contract check skipped: {' and '.join(missing)} not installed")
    with prism_mock() as url:
        yield url
