"""A template cannot reach Python internals, mutate what it is given, or make a huge email:
each attempt fails as a TemplateProblem naming the file, which fails the send, not the worker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from messages import sandbox
from messages.render import TemplateProblem, TemplateRenderer
from messages.samples import SAMPLES, LinkSigning, purchase_context
from tests.templates.files import edit


def _unsafe(attribute: str, owner: str) -> str:
    return f"not allowed: access to attribute '{attribute}' of '{owner}' object is unsafe."


# Each escape and the whole problem it is reported as: the first attribute the sandbox refuses
# or the name it does not know, never what lies behind it (a module, a function's globals).
ESCAPES = {
    "{{ ''.__class__ }}": _unsafe("__class__", "str"),
    "{{ ''.__class__.__mro__[1].__subclasses__() }}": _unsafe("__class__", "str"),
    "{{ cycler.__init__.__globals__ }}": _unsafe("__init__", "type"),
    "{{ joiner.__init__.__globals__.os }}": _unsafe("__init__", "type"),
    "{{ lipsum.__globals__['os'] }}": _unsafe("__globals__", "function"),
    "{{ namespace.__init__ }}": _unsafe("__init__", "type"),
    "{{ self.__init__.__globals__ }}": _unsafe("__init__", "TemplateReference"),
    "{{ range.__self__ }}": "UndefinedError: 'function object' has no attribute '__self__'",
    "{{ items.__class__.__base__ }}": _unsafe("__class__", "list"),
    "{{ '{0.__class__}'.format('') }}": _unsafe("__class__", "str"),
    "{{ shop.update({'name': 'x'}) }}": _unsafe("update", "dict"),
    "{{ items.append(1) }}": _unsafe("append", "list"),
    "{{ items.pop() }}": _unsafe("pop", "list"),
    "{% set x = customer.__setitem__('first_name', 'x') %}": _unsafe("__setitem__", "dict"),
    "{{ config }}": "UndefinedError: 'config' is undefined",
    "{{ request }}": "UndefinedError: 'request' is undefined",
    "{{ __import__('os') }}": "UndefinedError: '__import__' is undefined",
}

TOO_BIG = [
    "{{ 'x' * 1000000000 }}",
    "{{ ['x'] * 1000000000 }}",
    "{{ 'x' | center(1000000000) }}",
    "{{ 'x'.ljust(1000000000) }}",
    "{{ '%999999999s' % 'x' }}",
    "{{ '%999999999s' | format('x') }}",
    "{{ '{:999999999}'.format('x') }}",
    "{{ '{x:>999999999}'.format_map({'x': 1}) }}",
    "{{ 'x' | indent(1000000000, true) }}",
    "{{ 99 ** 64 ** 64 ** 64 }}",
    "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% set s = 'x' * 90000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
]


@pytest.fixture
def renderer(templates_copy: Path) -> TemplateRenderer:
    return TemplateRenderer(templates_copy)


def _render_body(renderer: TemplateRenderer, root: Path, source: str) -> str:
    edit(root, "day_21/body.html", source)
    context = purchase_context(renderer, "day_21", SAMPLES["ana-en-kettle-creator"],
                               LinkSigning("https://loyalloop.example", "secret"))
    return renderer.render_variant("day_21", context).html


@pytest.mark.parametrize(("source", "problem"), ESCAPES.items(), ids=list(ESCAPES))
def test_python_internals_and_mutation_fail_safely(
    renderer: TemplateRenderer, templates_copy: Path, source: str, problem: str
):
    with pytest.raises(TemplateProblem) as caught:
        _render_body(renderer, templates_copy, source)
    assert caught.value.file == "day_21/body.html"
    assert caught.value.problem == problem  # an explanation, never what the escape reached
    assert str(caught.value) == f"day_21/body.html:1: {problem}"


@pytest.mark.parametrize("source", TOO_BIG)
def test_huge_output_fails_fast(
    renderer: TemplateRenderer, templates_copy: Path, source: str,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(sandbox, "MAX_RENDER_SECONDS", 0.3)
    started = time.monotonic()
    with pytest.raises(TemplateProblem) as caught:
        _render_body(renderer, templates_copy, source)
    assert time.monotonic() - started < 3
    assert caught.value.file == "day_21/body.html"
    assert any(word in caught.value.problem for word in ("output over", "longer than", "large"))


def test_output_just_under_the_limit_renders(renderer: TemplateRenderer, templates_copy: Path):
    size = sandbox.MAX_OUTPUT_CHARS - 1000
    html = _render_body(renderer, templates_copy, f"{{{{ 'x' * {size} }}}}")
    assert len(html) == size


def test_ordinary_formatting_is_not_mistaken_for_abuse(
    renderer: TemplateRenderer, templates_copy: Path
):
    html = _render_body(
        renderer, templates_copy,
        "{{ '{:,}'.format(1234567) }} {{ '%.2f' % 3.14159 }} {{ '%05d'|format(42) }} "
        "{{ 'Call 1234567890 %s' % 'now' }} {{ 2 ** 10 }} {{ 'ab' * 3 }} "
        "{% for i in range(3) %}{{ i }}{% endfor %} {{ 'x'|center(9) }}|"
        "{% for i in items if i.tips %}{{ loop.index }}/{{ loop.length }}{{ '.' if loop.last }}"
        "{% else %}none{% endfor %}|{% for i in [] %}x{% else %}none{% endfor %}",
    )
    assert html == ("1,234,567 3.14 00042 Call 1234567890 now 1024 ababab 012     x    |"
                    "1/1.|none")


def test_html_is_autoescaped_and_text_is_not(renderer: TemplateRenderer, templates_copy: Path):
    context = purchase_context(renderer, "day_1", SAMPLES["sam-en-three-items-creator"],
                               LinkSigning("https://loyalloop.example", "secret"))
    rendered = renderer.render_variant("day_1", context)
    assert "Sam &lt;O&#39;Neil&gt;" in rendered.html and "<O'Neil>" not in rendered.html
    assert "&lt;Travel&gt; mug &amp; lid" in rendered.html
    assert "Hi Sam <O'Neil>," in rendered.text and "<Travel> mug & lid" in rendered.text
