"""An event refused for a reason the sender can fix: the HTTP status, and each field with its
problem. The HTTP intake and the command line both show it; neither shows a stack trace."""

from __future__ import annotations


class EventRejected(Exception):
    def __init__(
        self, status: int, field: str | None, problem: str,
        *, problems: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.status = status
        self.field = field
        self.problem = problem
        self.problems = problems or [{"field": field or "body", "problem": problem}]
        self.headers = headers

    @classmethod
    def invalid(cls, problems: list[dict[str, str]], status: int = 422) -> EventRejected:
        """Every problem of one event at once, so the sender can fix them in one go."""
        first = problems[0] if problems else {"field": "body", "problem": "is not a valid event"}
        return cls(status, first["field"], first["problem"], problems=problems or [first])

    def one_line(self) -> str:
        return "; ".join(f"{p['field']}: {p['problem']}" for p in self.problems)
