"""The SDK's warning that a workflow finished with a signal or update handler still running is
an error in every test (pyproject.toml's filterwarnings): a lifecycle that ends that way has lost
the event the handler held, so no test may pass with it."""

from __future__ import annotations

import warnings

import pytest
from temporalio.workflow import UnfinishedSignalHandlersWarning, UnfinishedUpdateHandlersWarning


@pytest.mark.parametrize(
    "category", [UnfinishedSignalHandlersWarning, UnfinishedUpdateHandlersWarning]
)
def test_an_unfinished_handler_warning_fails_the_test(category: type[Warning]) -> None:
    with pytest.raises(category):
        warnings.warn("a handler was still running when the workflow finished", category,
                      stacklevel=1)
