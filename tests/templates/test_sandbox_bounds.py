"""Templates that build huge text by ways the operators' own checks do not see: joins, block
captures, macros, filters and methods that repeat their arguments. Each must fail fast as a
TemplateProblem naming the file and line, having held little memory on the way, so one
marketer's mistake cannot exhaust the worker that sends everyone's email."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from fastapi import FastAPI
from fastapi.testclient import TestClient

from intake.preview import make_preview_router
from messages import sandbox
from messages.render import TemplateProblem, TemplateRenderer
from messages.samples import SAMPLES, LinkSigning, purchase_context
from tests.templates.files import edit, replace

MAX_PEAK_BYTES = 40 * 1024 * 1024
S = "{% set s = 'x' * 200000 %}\n"  # under the output limit by itself
BIG_LIST = "[" + "s, " * 500 + "]"  # 500 references to s: 100 million characters as text
A = "{% set a = 'ā' * 250000 %}\n"  # a character Python does not share between strings

EXPLOITS = {
    "tilde doubling": S + "{% set ns = namespace(s=s) %}{% for i in range(9) %}"
                          "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "replace filter": "{{ ('x' * 10000)|replace('x', 'y' * 10000) }}",
    "replace empty": "{{ ('x' * 10000)|replace('', 'y' * 10000) }}",
    "str.replace": "{{ ('x' * 10000).replace('x', 'y' * 10000) }}",
    "join filter of a repeated big string": "{{ (['y' * 200000] * 500)|join }}",
    "join filter separator": "{{ ('x' * 10000)|join('y' * 10000) }}",
    "str.join": "{{ ''.join(['y' * 200000] * 500) }}",
    "list of a big string printed": "{{ ['y' * 200000] * 500 }}",
    "list literal repeated": S + "{% set l = [s, s, s, s, s, s, s, s, s, s] %}{{ l * 50 }}",
    "list literal printed": S + "{{ " + BIG_LIST + " }}",
    "list literal joined by tilde": S + "{{ " + BIG_LIST + " ~ '' }}",
    "list literal through a filter": S + "{{ " + BIG_LIST + "|upper }}",
    "block output joined": S + "{% if false %}{% block b %}{% for i in range(500) %}{{ s }}"
                               "{% endfor %}{% endblock %}{% endif %}{{ self.b()|length }}",
    "lipsum": "{{ lipsum(100000, false, 100, 100) }}",
    "set block": S + "{% set x %}{% for i in range(500) %}{{ s }}{% endfor %}{% endset %}"
                     "{{ x|length }}",
    "set block of new strings": S + "{% set x %}{% for i in range(500) %}{{ s ~ i }}"
                                    "{% endfor %}{% endset %}{{ x|length }}",
    "macro": S + "{% macro m() %}{% for i in range(500) %}{{ s }}{% endfor %}{% endmacro %}"
                 "{{ m()|length }}",
    "doubling macro": S + "{% macro d(n) %}{% if n %}{{ d(n - 1) }}{{ d(n - 1) }}{% else %}"
                          "{{ s }}{% endif %}{% endmacro %}{{ d(9)|length }}",
    "deep macros holding new strings": S + "{% macro d(n) %}{% if n %}{{ s ~ s ~ n }}"
                                           "{{ d(n - 1) }}{% endif %}{% endmacro %}"
                                           "{{ d(150)|length }}",
    "characters of a long string as a list": A + "{{ (a ~ a ~ a ~ a)|list|length }}",
    "loop length over a long string": A + "{% for c in a ~ a ~ a ~ a %}{{ loop.length }}"
                                          "{% endfor %}",
    "filter block": S + "{% filter upper %}{% for i in range(500) %}{{ s }}{% endfor %}"
                        "{% endfilter %}",
    "caller": S + "{% macro w() %}{{ caller()|length }}{% endmacro %}{% call w() %}"
                  "{% for i in range(500) %}{{ s }}{% endfor %}{% endcall %}",
    "block called again": S + "{% block b %}{{ s }}{% endblock %}{% set x %}"
                              "{% for i in range(500) %}{{ self.b() }}{% endfor %}{% endset %}",
    "percent with a repeated tuple": S + "{{ ('%s' * 500) % ((s,) * 500) }}",
    "percent star width": "{{ '%*s' % (100000000, 'x') }}",
    "format field reused": S + "{{ ('{0}' * 500).format(s) }}",
    "format nested width": "{{ '{:{}}'.format('x', 100000000) }}",
    "expandtabs": "{{ ('\t' * 10000).expandtabs(10000) }}",
    "translate": "{{ ('x' * 10000).translate({120: 'y' * 10000}) }}",
    "wordwrap": "{{ ('x ' * 10000)|wordwrap(1, wrapstring='y' * 10000) }}",
    "urlize target": "{{ ('http://a.example ' * 10000)|urlize(target='y' * 10000) }}",
    "batch fill": "{{ [1]|batch(10000000, 'x')|list|length }}",
    "slice": "{{ [1]|slice(1000000)|list|length }}",
    "tojson indent": "{{ ([[1]] * 25000)|tojson(indent=1000) }}",
    "sum of lists": "{{ ([[1] * 100000] * 100)|sum(start=[])|length }}",
    "int to bytes": "{{ (1).to_bytes(100000000, 'big')|length }}",
    "bytes padding": "{{ 'x'.encode().center(100000000)|length }}",
    "squared integers": "{% set ns = namespace(n=2 ** 64) %}{% for i in range(21) %}"
                        "{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n > 0 }}",
}

ERRORS = {
    "range over the limit": ("{% for i in range(200000) %}{% endfor %}", "OverflowError"),
    "endless recursion": ("{% macro r() %}{{ r() }}{% endmacro %}{{ r() }}", "RecursionError"),
    "division by zero": ("{{ 1 // 0 }}", "ZeroDivisionError"),
    "type mismatch": ("{{ 1 + 'a' }}", "TypeError"),
    "bad value": ("{{ ''.split('') }}", "ValueError"),
}


@pytest.fixture
def renderer(templates_copy: Path) -> TemplateRenderer:
    return TemplateRenderer(templates_copy)


def _render_body(renderer: TemplateRenderer, root: Path, source: str) -> None:
    edit(root, "day_21/body.html", "<p>\n" + source)
    context = purchase_context(renderer, "day_21", SAMPLES["ana-en-kettle-creator"],
                               LinkSigning("https://loyalloop.example", "secret"))
    renderer.render_variant("day_21", context)


def _fails_within_bounds(renderer: TemplateRenderer, root: Path, source: str) -> TemplateProblem:
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(TemplateProblem) as caught:
            _render_body(renderer, root, source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 3
    assert peak < MAX_PEAK_BYTES, f"{peak / 2**20:.0f} MB held"
    assert caught.value.file == "day_21/body.html"
    return caught.value


@pytest.mark.parametrize("source", EXPLOITS.values(), ids=EXPLOITS.keys())
def test_text_built_past_the_limit_fails_fast_and_small(
    renderer: TemplateRenderer, templates_copy: Path, source: str,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(sandbox, "MAX_RENDER_SECONDS", 0.5)
    problem = _fails_within_bounds(renderer, templates_copy, source)
    assert problem.line is not None and problem.line >= 2, problem


@pytest.mark.parametrize(("source", "kind"), ERRORS.values(), ids=ERRORS.keys())
def test_every_error_of_a_render_is_a_template_problem(
    renderer: TemplateRenderer, templates_copy: Path, source: str, kind: str
):
    problem = _fails_within_bounds(renderer, templates_copy, source)
    assert problem.line == 2, problem
    assert problem.problem.startswith(kind), problem
    assert "\n" not in problem.problem


def test_check_reports_an_error_in_one_line(loyalloop: Callable[..., Result],
                                            templates_copy: Path):
    replace(templates_copy, "day_7/body.html", "<ul>",
            "<ul>{% for i in range(200000) %}{% endfor %}")
    result = loyalloop("templates", "check", "--dir", str(templates_copy))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    [problem] = [line for line in result.output.splitlines() if "OverflowError" in line]
    assert problem.startswith("templates/day_7/body.html:5: OverflowError: Range too big.")


def test_preview_shows_an_error_as_a_template_problem(templates_copy: Path):
    app = FastAPI()
    app.include_router(make_preview_router(lambda: TemplateRenderer(templates_copy), dev=True))
    edit(templates_copy, "day_21/body.html", "<p>\n{{ lipsum(100000, false, 100, 100) }}")
    response = TestClient(app).get("/templates/day_21/preview", params={"format": "json"})
    assert response.status_code == 422
    assert response.json()["problems"] == [
        {"field": "day_21/body.html:2", "problem": "output over 1048576 characters"}]
