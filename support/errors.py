"""A support or finance action refused for a reason the person can fix or should know."""

from __future__ import annotations


class ActionRefused(Exception):
    def __init__(self, field: str | None, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem
