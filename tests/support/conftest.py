"""Support's tests run the real actions on the kit's real workers, service and databases."""

from __future__ import annotations

import pytest

from support.actions import SupportActions
from support.audit import Actor
from tests.lifecycle_kit import LifecycleKit

ANA = Actor("ana.support", "customer asked on chat #812")


@pytest.fixture
def actions(kit: LifecycleKit) -> SupportActions:
    return SupportActions(kit.service, [rule.step for rule in kit.rules.steps])
