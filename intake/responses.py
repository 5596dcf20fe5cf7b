"""Every error the intake answers has one shape: {"error": ..., "problems": [{field, problem}]}."""

from __future__ import annotations

from starlette.responses import JSONResponse

from intake.errors import EventRejected

TITLES = {
    400: "malformed request",
    401: "not authenticated",
    403: "not this shop's",
    404: "not found",
    405: "method not allowed",
    409: "conflicts with what is stored",
    413: "body too large",
    422: "invalid event",
    429: "too many failed authentications",
    503: "temporarily unavailable, retry later",
}


def error_body(status: int, problems: list[dict[str, str]]) -> dict[str, object]:
    return {"error": TITLES.get(status, "request refused"), "problems": problems}


def error_response(error: EventRejected) -> JSONResponse:
    body = error_body(error.status, error.problems)
    return JSONResponse(body, error.status, headers=error.headers)
