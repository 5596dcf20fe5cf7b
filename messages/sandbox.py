"""The Jinja2 sandbox marketers' templates run in.

Jinja's immutable sandbox already refuses Python internals (`''.__class__`, `__globals__`) and
mutation of the context. On top of it, every render has bounds: no text longer than
`MAX_OUTPUT_CHARS` (the email, and any string, list or captured block on the way), no more than
`MAX_WORK_CHARS` of text made in all, no list of more than `MAX_ITEMS` characters of a string,
and no longer than `MAX_RENDER_SECONDS` (every loop, call, filter and operator checks the clock).

Checking only the operators is not enough: `~`, `join`, `replace`, `{% set %}` blocks, macros and
format strings repeat what they are given, and a list of a thousand references to one string is a
thousand strings once printed. So the bounds are kept where Jinja's compiled code makes text:
the block buffers and `concat` it joins them with, `~`, every filter and method call (checked
before the call where the result could outgrow its arguments, and measured after), and every
value printed. Such a mistake fails one send, which retries and shows the problem, instead of
stalling or exhausting the worker that sends everyone's email.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from jinja2 import BaseLoader, StrictUndefined, Template
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import Call, Concat, For, Name
from jinja2.nodes import Template as TemplateNode
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError, safe_range
from jinja2.utils import Namespace, generate_lorem_ipsum, pass_eval_context

MAX_OUTPUT_CHARS = 1024 * 1024
MAX_WORK_CHARS = 8 * MAX_OUTPUT_CHARS
MAX_ITEMS = 100_000
MAX_RENDER_SECONDS = 2.0
MAX_POWER = 64
MAX_POWER_BITS = 4096
LOOP_GUARD = "loyalloop_timed_loop"
_PERCENT_SPEC = re.compile(r"%[#0 +\-]*(\d*)(?:\.(\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")
_NESTED_SPEC = re.compile(r"\{[^{}]*:[^{}]*\{")
_deadline: ContextVar[float | None] = ContextVar("render_deadline", default=None)
_spent: ContextVar[list[int] | None] = ContextVar("render_spent", default=None)


class RenderLimit(SecurityError):
    """A template went past a size or time bound."""


# The bounds.


def _check_size(size: int) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise RenderLimit(f"output over {MAX_OUTPUT_CHARS} characters")


def _check_time() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise RenderLimit(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")


def _charge(size: int) -> None:
    """Text made on the way counts even when it is dropped: it cost memory and time."""
    _check_size(size)
    spent = _spent.get()
    if spent is not None:
        spent[0] += size
        if spent[0] > MAX_WORK_CHARS:
            raise RenderLimit(f"rendering made over {MAX_WORK_CHARS} characters of text")


def _check_items(value: Any) -> None:
    if isinstance(value, str) and len(value) > MAX_ITEMS:
        raise RenderLimit(f"a string of over {MAX_ITEMS} characters cannot be split into items")


def _check_count(count: Any) -> None:
    if isinstance(count, int) and count > MAX_ITEMS:
        raise RenderLimit(f"more than {MAX_ITEMS} items")


def _check_widths(*widths: Any) -> None:
    """Padding widths that would build a string past the limit before anything counts it."""
    for width in widths:
        if isinstance(width, int) and not isinstance(width, bool):
            _check_size(abs(width))


@dataclass(frozen=True)
class Extent:
    chars: int  # at most what `str(value)` takes, counted until past MAX_OUTPUT_CHARS
    nodes: int
    depth: int


_SEQUENCES: tuple[type[Iterable[Any]], ...] = (
    list, tuple, set, frozenset, type({}.keys()), type({}.values()), type({}.items()),
)


def extent(value: Any) -> Extent:
    """How much text a value becomes when printed, joined or formatted: a list holding one
    string a thousand times is a thousand strings long."""
    chars = nodes = depth = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack and chars <= MAX_OUTPUT_CHARS:
        item, level = stack.pop()
        nodes, depth = nodes + 1, max(depth, level)
        nested = 4 if level else 0  # quotes and a separator
        if isinstance(item, str):
            chars += len(item) + nested
        elif isinstance(item, bytes | bytearray):
            chars += 4 * len(item) + nested
        elif isinstance(item, Namespace):
            stack.append((object.__getattribute__(item, "_Namespace__attrs"), level + 1))
        elif isinstance(item, Mapping):
            chars += 2 + nested
            stack += [(part, level + 1) for pair in item.items() for part in pair]
        elif isinstance(item, _SEQUENCES):
            chars += 2 + nested
            stack += [(part, level + 1) for part in item]
        elif isinstance(item, int):
            chars += item.bit_length() // 3 + 2 + nested
        else:
            chars += 32 + nested
    return Extent(chars, nodes, depth)


def _chars(*values: Any) -> int:
    return sum(extent(value).chars for value in values)


# Format strings: widths, and fields that repeat an argument.


def _check_percent(spec: str, values: Any) -> None:
    """`spec % values`: `%999999999s`, `%*s`, and `'%s' * 500 % ((s,) * 500)`."""
    numbers = [n for found in _PERCENT_SPEC.findall(spec) for n in found if n]
    _check_widths(*(int(n) for n in numbers))
    items = values if isinstance(values, tuple) else (values,)
    if "*" in spec:
        _check_widths(*items)
    if isinstance(values, tuple):
        _check_size(len(spec) + _chars(*values))
    else:
        _check_size(len(spec) + spec.count("%") * _chars(values))


def _check_format(spec: str, args: Iterable[Any]) -> None:
    """`spec.format(...)`: `{:999999999}`, `{:{}}` with a width argument, `'{0}' * 500`."""
    args = list(args)
    _check_widths(*(int(n) for n in re.findall(r"\d+", " ".join(_BRACE_SPEC.findall(spec)))))
    if _NESTED_SPEC.search(spec):
        _check_widths(*args, *(v for a in args if isinstance(a, Mapping) for v in a.values()))
    _check_size(len(spec) + spec.count("{") * max((extent(a).chars for a in args), default=0))


def _replaced_size(s: Any, old: Any, new: Any, count: Any = None) -> int:
    s, old, new = str(s), str(old), str(new)
    times = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    return len(s) + times * len(new) * 5  # `new` may be HTML-escaped: `"` becomes `&#34;`


def _joined_size(separator: Any, items: str | list[Any]) -> int:
    chars = len(items) if isinstance(items, str) else _chars(*items)
    return chars + max(len(items) - 1, 0) * len(str(separator))


# String methods a template may call, and the checks of those that repeat their arguments.

_STR_METHODS = frozenset({
    "capitalize", "casefold", "center", "count", "endswith", "find", "format", "format_map",
    "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower",
    "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower",
    "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust",
    "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase",
    "title", "upper", "zfill", "striptags", "unescape",
})
_METHODS: dict[tuple[type, ...], frozenset[str]] = {
    (str,): _STR_METHODS,
    (dict,): frozenset({"get", "items", "keys", "values"}),
    (list, tuple): frozenset({"count", "index"}),
    (bytes, bytearray, int, float, complex, set, frozenset): frozenset(),
}


def _check_method(receiver: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
                  ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Methods of Python's own types: only those listed, checked before they run."""
    allowed = next((names for types, names in _METHODS.items() if isinstance(receiver, types)),
                   None)
    if allowed is None:
        return args, kwargs
    if name not in allowed:
        raise SecurityError(f"{type(receiver).__name__}.{name}() is not available in templates")
    if not isinstance(receiver, str):
        return args, kwargs
    _check_size(_chars(*args, *kwargs.values()))
    if name in ("center", "ljust", "rjust", "zfill"):
        _check_widths(*args, *kwargs.values())
    elif name == "format":
        _check_format(receiver, [*args, *kwargs.values()])
    elif name == "format_map":
        _check_format(receiver, args)
    elif name == "join" and args:
        args = (list(args[0]),) + args[1:]
        _check_size(_joined_size(receiver, args[0]))
    elif name == "replace" and len(args) >= 2:
        _check_size(_replaced_size(receiver, *args[:3]))
    elif name in ("split", "rsplit", "splitlines"):
        _check_items(receiver)
    return args, kwargs


def _measured(result: Any) -> Any:
    if isinstance(result, str):
        _charge(len(result))
    return result


# Filters: every one measured; those that repeat an argument checked before they run.


def _join_check(a: dict[str, Any]) -> None:
    if not isinstance(a["value"], str):
        a["value"] = list(a["value"])
    _check_size(_joined_size(a.get("d", ""), a["value"]))


def _sum_check(a: dict[str, Any]) -> None:
    a["iterable"] = list(a["iterable"])
    _check_size(_chars(a["iterable"], a.get("start", 0)))


def _wordwrap_check(a: dict[str, Any]) -> None:
    s, width = str(a["s"]), max(a.get("width", 79), 1)
    lines = 2 * len(s) // width + s.count("\n") + 1
    _check_size(len(s) + lines * len(str(a.get("wrapstring") or "\n")))


def _urlize_check(a: dict[str, Any]) -> None:
    value = str(a["value"])
    per_link = len(str(a.get("target") or "")) + len(str(a.get("rel") or "")) + 64
    _check_size(3 * len(value) + len(value.split()) * per_link)


def _indent_check(a: dict[str, Any]) -> None:
    width = a.get("width", 4)
    prefix = width if isinstance(width, int) else len(str(width))
    _check_widths(prefix)
    _check_size(len(str(a["s"])) * (1 + prefix))


def _json_check(a: dict[str, Any], indent: Any) -> None:
    shape = extent(a["value"])
    step = indent if isinstance(indent, int) else len(str(indent or ""))
    _check_widths(step)
    _check_size(shape.chars + shape.nodes * (shape.depth * step + 2))


_FILTER_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "center": lambda a: _check_widths(a.get("width", 80)),
    "indent": _indent_check,
    "format": lambda a: _check_percent(str(a["value"]), a.get("kwargs") or a.get("args", ())),
    "replace": lambda a: _check_size(_replaced_size(a["s"], a["old"], a["new"], a.get("count"))),
    "join": _join_check,
    "sum": _sum_check,
    "wordwrap": _wordwrap_check,
    "urlize": _urlize_check,
    "batch": lambda a: _check_count(a["linecount"] if a.get("fill_with") is not None else 0),
    "slice": lambda a: _check_count(a["slices"]),
    "tojson": lambda a: _json_check(a, a.get("indent")),
    "pprint": lambda a: _json_check(a, 1),
}
# Filters that make no text of their value: not measured before (they run in every loop).
_STRUCTURAL = frozenset({
    "abs", "attr", "batch", "count", "d", "default", "dictsort", "first", "float", "groupby",
    "int", "items", "last", "length", "list", "map", "max", "min", "random", "reject",
    "rejectattr", "reverse", "round", "select", "selectattr", "slice", "sort", "unique",
})
# Filters that turn a string into a list of its characters.
_ITEMIZING = frozenset({
    "batch", "groupby", "join", "list", "map", "reject", "rejectattr", "select", "selectattr",
    "slice", "sort", "sum", "unique",
})


def _signature_of_value(func: Callable[..., Any]) -> inspect.Signature:
    """The filter's parameters from its value on (Jinja's async variants take the context
    they are passed without declaring it)."""
    signature = inspect.signature(func)
    params = list(signature.parameters.values())
    if params and params[0].name in ("context", "eval_ctx", "environment"):
        params = params[1:]
    return signature.replace(parameters=params)


def _guarded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    leading = 1 if hasattr(func, "jinja_pass_arg") else 0
    signature = _signature_of_value(func)
    check = _FILTER_CHECKS.get(name)
    measure_before = name not in _STRUCTURAL

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_time()
        head, given = args[:leading], args[leading:]
        if given and name in _ITEMIZING:
            _check_items(given[0])
        if check is not None:
            bound = signature.bind(*given, **kwargs)
            check(bound.arguments)
            given, kwargs = bound.args, bound.kwargs
        if measure_before:
            _check_size(_chars(*given, *kwargs.values()))
        return _measured(func(*head, *given, **kwargs))

    return guarded


# Globals.


def _range(*args: int) -> Iterator[int]:
    for number in safe_range(*args):
        _check_time()
        yield number


def _timed(items: Iterable[Any]) -> Iterator[Any]:
    """Every `{% for %}` runs over this, so nested loops over long values stop on time."""
    _check_items(items)
    for item in items:
        _check_time()
        yield item


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    _check_widths(n, max)
    _check_size(n * max * 16)  # the longest lorem ipsum word, a comma and a space
    return _measured(generate_lorem_ipsum(n, html, min, max))


# Where compiled templates make text: block buffers, `concat` and `~`.


class _Buffer(list):  # type: ignore[type-arg]
    """The output of a `{% set %}` block, a macro, `caller()` or a `{% filter %}` block on its
    way to one string, counted as it grows."""

    __slots__ = ("size",)

    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def append(self, chunk: Any) -> None:
        self.size += len(chunk)
        _charge(len(chunk))
        _check_size(self.size)
        super().append(chunk)

    def extend(self, chunks: Iterable[Any]) -> None:
        for chunk in chunks:
            self.append(chunk)


def _concat(chunks: Iterable[str]) -> str:
    """Jinja's `environment.concat`: joins buffers, and block output for `self.name()`."""
    if not isinstance(chunks, _Buffer):
        buffer = _Buffer()
        buffer.extend(chunks)
        chunks = buffer
    return "".join(chunks)


@pass_eval_context
def _tilde(eval_ctx: Any, *values: Any) -> str:
    """`a ~ b ~ c`, measured before the values become text."""
    _check_time()
    _check_size(_chars(*values))
    return _measured(markup_join(values) if eval_ctx.autoescape else str_join(values))


class _BoundedCode(CodeGenerator):
    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.new_buffer()")

    def visit_Concat(self, node: Concat, frame: Frame) -> None:
        self.write("environment.call(context, environment.tilde, ")
        for value in node.nodes:
            self.visit(value, frame)
            self.write(", ")
        self.write(")")


def _finalize(value: Any) -> Any:
    """Every printed value: a list is measured before it becomes text."""
    if not isinstance(value, str):
        _check_size(extent(value).chars)
    return value


class MessageSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedCode
    concat = staticmethod(_concat)  # type: ignore[assignment]
    new_buffer = _Buffer
    tilde = staticmethod(_tilde)

    def __init__(self, loader: BaseLoader, *, autoescape: bool) -> None:
        super().__init__(loader=loader, autoescape=autoescape, undefined=StrictUndefined,
                         auto_reload=True, keep_trailing_newline=False, finalize=_finalize)
        self.globals.update({"range": _range, "lipsum": _lipsum, LOOP_GUARD: _timed})
        self.filters = {name: _guarded_filter(name, f) for name, f in self.filters.items()}

    def _parse(self, source: str, name: str | None, filename: str | None) -> TemplateNode:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(For):
            loop.iter = Call(Name(LOOP_GUARD, "load", lineno=loop.lineno),
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
            if isinstance(left, int) and isinstance(right, int) and (
                    left.bit_length() + right.bit_length() > MAX_POWER_BITS):
                raise RenderLimit("number too large")
            for sized, times in ((left, right), (right, left)):
                if isinstance(sized, str | list | tuple) and isinstance(times, int):
                    _check_size(extent(sized).chars * times)
        if operator == "+" and isinstance(left, str | list | tuple):
            _check_size(_chars(left, right))
        if operator == "%" and isinstance(left, str):
            _check_percent(left, right)
        return _measured(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_time()
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        receiver = getattr(method, "__self__", None)
        if receiver is not None and not isinstance(receiver, type):
            args, kwargs = _check_method(receiver, getattr(method, "__name__", ""), args, kwargs)
        return _measured(super().call(__context, __obj, *args, **kwargs))


@contextmanager
def render_budget() -> Iterator[None]:
    """Start the clock and the count for one render (per thread: each send renders on its
    own thread)."""
    deadline = _deadline.set(time.monotonic() + MAX_RENDER_SECONDS)
    spent = _spent.set([0])
    try:
        yield
    finally:
        _spent.reset(spent)
        _deadline.reset(deadline)


def render_capped(template: Template, context: dict[str, Any]) -> str:
    """Render chunk by chunk, stopping as soon as the output passes the limit (raised inside
    the template, so the error names the line that wrote past it)."""
    chunks = _Buffer()
    with render_budget():
        stream = cast(Generator[str, None, None], template.generate(context))
        for count, chunk in enumerate(stream):
            try:
                chunks.append(chunk)
                if count % 256 == 255:
                    _check_time()
            except RenderLimit as error:
                stream.throw(error)
    return "".join(chunks)
