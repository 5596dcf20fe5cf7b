"""The Jinja2 sandbox marketers' templates run in.

Jinja's immutable sandbox already refuses Python internals (`''.__class__`, `__globals__`) and
mutation of the context. On top of it, a template may not make more than `MAX_OUTPUT_CHARS` of
text, nor build a string or list that large on the way (`'x' * 10**9`, `'x'|center(10**9)`), nor
run longer than `MAX_RENDER_SECONDS` (every loop, call and operator checks the clock). Such a
mistake fails one send, which retries and shows the problem, instead of stalling or exhausting
the worker that sends everyone's email.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, Template, nodes
from jinja2.filters import do_center, do_format, do_indent
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError, safe_range

MAX_OUTPUT_CHARS = 256 * 1024
MAX_RENDER_SECONDS = 2.0
MAX_POWER = 64
MAX_POWER_BITS = 4096
_PERCENT_SPEC = re.compile(r"%[#0 +\-]*(\d*)(?:\.(\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")
_PAD_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs"}
_FORMAT_METHODS = {"format", "format_map"}
LOOP_GUARD = "loyalloop_timed_loop"
_deadline: ContextVar[float | None] = ContextVar("render_deadline", default=None)


class RenderLimit(SecurityError):
    """A template went past a size or time bound."""


def _check_size(size: int) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise RenderLimit(f"output over {MAX_OUTPUT_CHARS} characters")


def _check_time() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise RenderLimit(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")


def _check_widths(*widths: Any) -> None:
    """Padding widths that would build a string past the limit before anything counts it."""
    for width in widths:
        if isinstance(width, int) and not isinstance(width, bool):
            _check_size(abs(width))


def _check_format(spec: str) -> None:
    """Widths and precisions in a format string: `%999999999s`, `{:999999999}`."""
    numbers = [n for found in _PERCENT_SPEC.findall(spec) for n in found if n]
    numbers += re.findall(r"\d+", " ".join(_BRACE_SPEC.findall(spec)))
    _check_widths(*(int(n) for n in numbers))


def _range(*args: int) -> Iterator[int]:
    for number in safe_range(*args):
        _check_time()
        yield number


def _timed(items: Iterable[Any]) -> Iterator[Any]:
    """Every `{% for %}` runs over this, so nested loops over long values stop on time."""
    for item in items:
        _check_time()
        yield item


def _center(value: str, width: int = 80) -> str:
    _check_widths(width)
    return do_center(value, width)


def _indent(value: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    _check_widths(width if isinstance(width, int) else len(width))
    _check_size(len(str(value)) * (1 + (width if isinstance(width, int) else len(width))))
    return do_indent(value, width, first, blank)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    _check_format(str(value))
    return do_format(value, *args, **kwargs)


class MessageSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, loader: BaseLoader, *, autoescape: bool) -> None:
        super().__init__(loader=loader, autoescape=autoescape, undefined=StrictUndefined,
                         auto_reload=True, keep_trailing_newline=False)
        self.globals.update({"range": _range, LOOP_GUARD: _timed})
        self.filters.update(center=_center, indent=_indent, format=_format)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(nodes.Name(LOOP_GUARD, "load", lineno=loop.lineno),
                                   [loop.iter], [], None, None, lineno=loop.lineno)
        return tree

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_time()
        if operator == "**" and isinstance(right, int | float) and (
            abs(right) > MAX_POWER
            or isinstance(left, int) and abs(left).bit_length() * abs(right) > MAX_POWER_BITS
        ):
            raise RenderLimit("number too large")
        if operator == "*":
            for sized, times in ((left, right), (right, left)):
                if isinstance(sized, str | list | tuple) and isinstance(times, int):
                    _check_size(len(sized) * times)
        if operator == "+" and isinstance(left, str | list | tuple) and hasattr(right, "__len__"):
            _check_size(len(left) + len(right))
        if operator == "%" and isinstance(left, str):
            _check_format(left)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_time()
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        if isinstance(getattr(method, "__self__", None), str):
            name = getattr(method, "__name__", "")
            if name in _PAD_METHODS:
                _check_widths(*args, *kwargs.values())
            elif name in _FORMAT_METHODS:
                _check_format(method.__self__)
        return super().call(__context, __obj, *args, **kwargs)


@contextmanager
def render_budget() -> Iterator[None]:
    """Start the clock for one render (per thread: each send renders on its own thread)."""
    token = _deadline.set(time.monotonic() + MAX_RENDER_SECONDS)
    try:
        yield
    finally:
        _deadline.reset(token)


def render_capped(template: Template, context: dict[str, Any]) -> str:
    """Render chunk by chunk, stopping as soon as the output passes the limit."""
    chunks: list[str] = []
    size = 0
    with render_budget():
        for count, chunk in enumerate(template.generate(context)):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                _check_size(size)
            if count % 256 == 255:
                _check_time()
            chunks.append(chunk)
    return "".join(chunks)
