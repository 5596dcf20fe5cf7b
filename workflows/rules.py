"""Schedule and reward rules: plain data handed to each lifecycle in its input.

The workflow never reads configuration; the worker's starter (intake, CLI) builds these from
settings and the lifecycle keeps the rules it was started with for its whole life.
Money is carried as decimal strings so histories hold exact amounts.
"""

import re
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import Any

# Steps and tiers name templates folders and join keys (`<lifecycle id>:<step>`, `tier:<name>`),
# so they hold no separator and no path.
NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class StepRule:
    """One email step. `once_per` stops a repeat buyer getting it twice: per `product` (the
    onboarding series, again for a new product) or per `customer` (the referral prompt)."""

    step: str
    day: int
    marketing: bool = True
    once_per: str = "product"


@dataclass(frozen=True)
class Tier:
    name: str
    min_spend: str


def _default_steps() -> list[StepRule]:
    return [
        StepRule("day_1", 1),
        StepRule("day_7", 7),
        StepRule("referral_prompt", 7, once_per="customer"),
        StepRule("day_21", 21),
    ]


def _default_tiers() -> list[Tier]:
    return [Tier("silver", "150"), Tier("gold", "400"), Tier("platinum", "1000")]


def _default_rewards() -> dict[str, str]:
    return {
        "referral": "5.00",
        "first_repeat_purchase": "5.00",
        "spend": "10.00",
        "tier": "15.00",
    }


@dataclass(frozen=True)
class LifecycleRules:
    day_seconds: int = 86400
    send_hour: int = 10
    steps: list[StepRule] = field(default_factory=_default_steps)
    attribution_window_days: int = 180
    hold_days: int = 30
    spend_thresholds: list[str] = field(default_factory=lambda: ["100", "250", "500"])
    tiers: list[Tier] = field(default_factory=_default_tiers)
    rewards: dict[str, str] = field(default_factory=_default_rewards)
    # At most one marketing email per customer in this many hours, across all of the customer's
    # lifecycles; one over it waits for the next send hour (docs/lifecycle.md). 0 turns it off.
    frequency_cap_hours: float = 16

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "LifecycleRules":
        """Build rules from a JSON config, naming any key or value that is wrong."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(
                f"unknown rule(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values = dict(raw)
        if "steps" in values:
            values["steps"] = [StepRule(**s) for s in values["steps"]]
        if "tiers" in values:
            values["tiers"] = [Tier(**t) for t in values["tiers"]]
        rules = cls(**values)
        rules.validate()
        return rules

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        if self.day_seconds <= 0:
            raise ValueError("day_seconds must be positive")
        if not 0 <= self.send_hour <= 23:
            raise ValueError("send_hour must be between 0 and 23")
        cap = self.frequency_cap_hours
        if isinstance(cap, bool) or not isinstance(cap, int | float) or not 0 <= cap <= 720:
            raise ValueError("frequency_cap_hours must be between 0 and 720 (30 days)")
        if self.attribution_window_days < 0 or self.hold_days < 0:
            raise ValueError("attribution_window_days and hold_days must not be negative")
        for name in [*(s.step for s in self.steps), *(t.name for t in self.tiers)]:
            if not NAME.match(name):
                raise ValueError(
                    f"{name!r}: step and tier names are 1-63 lower-case letters, digits or _"
                )
        amounts = [
            *self.spend_thresholds,
            *(t.min_spend for t in self.tiers),
            *self.rewards.values(),
        ]
        for amount in amounts:
            try:
                if Decimal(amount) < 0:
                    raise ValueError
            except (ArithmeticError, ValueError):
                raise ValueError(f"{amount!r} is not a non-negative decimal amount") from None
        missing = {"referral", "first_repeat_purchase", "spend", "tier"} - set(self.rewards)
        if missing:
            raise ValueError(f"rewards lack: {', '.join(sorted(missing))}")

    def frequency_cap_seconds(self) -> float:
        """The cap in lifecycle time: a compressed day compresses it too."""
        return self.frequency_cap_hours * 3600 * self.day_seconds / 86400

    def reward(self, milestone: str) -> str:
        """Reward for a milestone; `spend:250` may have its own entry, else the `spend` one."""
        return self.rewards.get(milestone) or self.rewards[milestone.split(":", 1)[0]]

    def milestones_crossed(self, before: str, after: str) -> list[str]:
        """Spend thresholds and tiers a purchase moved the customer's cumulative spend across."""
        low, high = Decimal(before), Decimal(after)
        crossed = [f"spend:{t}" for t in self.spend_thresholds if low < Decimal(t) <= high]
        crossed += [f"tier:{t.name}" for t in self.tiers if low < Decimal(t.min_spend) <= high]
        return crossed
