"""An event refused for a reason the sender can fix: the HTTP status, the field and the problem."""

from __future__ import annotations


class EventRejected(Exception):
    def __init__(self, status: int, field: str | None, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.status = status
        self.field = field
        self.problem = problem
