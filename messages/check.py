"""`templates check`: every step and every override, rendered against sample purchases, so a
marketer's mistake is caught with its file and line before a customer could get it.

A problem is: a part that is missing or does not render (syntax, undefined variable, sandbox,
size), an override folder that would never be chosen, a marketing email without the
customer's unsubscribe link (HTML and text), a link that is not https, or a link carrying the
customer's referral code that bypasses the tracked `{{ referral.link }}` (its clicks would go
uncounted).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from messages.render import (
    DATA_FILES,
    PARTS,
    SHARED,
    Rendered,
    TemplateProblem,
    TemplateRenderer,
)
from messages.samples import (
    SAMPLES,
    LinkSigning,
    purchase_context,
    skus_of,
    with_sku_first,
)
from shop_events.schemas import PurchaseEvent

SAFE_SCHEMES = ("https", "mailto", "tel")
LINK_ATTRIBUTES = {"href", "src", "action", "background", "poster"}
TEXT_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*)://[^\s<>\"')\]]+")
VARIANT = re.compile(r"^[^/]+(/sku/[^/]+)?(/locale/[^/]+)?$")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str
    sample: str | None = None
    setting: bool = False  # `file` names a setting, not a file under the templates folder

    def where(self, root: Path | None = None) -> str:
        path = (root / self.file).as_posix() if root and not self.setting else self.file
        return f"{path}:{self.line}" if self.line else path


@dataclass
class Report:
    steps: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)
    renders: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def add(self, problem: Problem) -> None:
        if all((p.file, p.line, p.message) != (problem.file, problem.line, problem.message)
               for p in self.problems):
            self.problems.append(problem)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value or "" for name, value in attrs if name in LINK_ATTRIBUTES]


def html_links(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser.links


def text_links(text: str) -> list[str]:
    return [match.group(0).rstrip(".,;:!?") for match in TEXT_URL.finditer(text)]


def is_safe_link(link: str) -> bool:
    scheme = urlsplit(link.strip()).scheme.lower()
    return scheme in SAFE_SCHEMES and (scheme != "https" or bool(urlsplit(link.strip()).netloc))


def check_templates(
    renderer: TemplateRenderer, signing: LinkSigning, marketing: dict[str, bool],
) -> Report:
    """`marketing`: the configured steps and whether each is a marketing email; a folder of a
    step not configured there is checked as a marketing email."""
    report = Report()
    if not renderer.root.is_dir():
        report.add(Problem(".", None, "templates folder does not exist"))
        return report
    try:
        renderer.shop("default"), renderer.products()
    except TemplateProblem as problem:
        report.add(Problem(problem.file or "?", problem.line, problem.problem))
        return report
    report.steps = sorted(set(renderer.steps()) | set(marketing))
    for step in report.steps:
        is_marketing = marketing.get(step, True)
        variants = renderer.variants(step) if (renderer.root / step).is_dir() else []
        if step not in variants:
            report.add(Problem(f"{step}/{PARTS[0]}", None, "missing part: every step needs a "
                               "default subject.txt, body.html and body.txt"))
            continue
        for variant in variants:
            report.variants.append(variant)
            _check_variant(renderer, signing, report, variant, is_marketing)
        report.warnings += _language_gaps(step, variants)
        for name, purchase in SAMPLES.items():
            _check_choice(renderer, signing, report, step, name, purchase)
    return report


def _check_variant(
    renderer: TemplateRenderer, signing: LinkSigning, report: Report, variant: str,
    is_marketing: bool,
) -> None:
    folder = renderer.root / variant
    if not VARIANT.match(variant):
        report.add(Problem(variant, None, "never used: an override folder is <step>/locale/"
                           "<locale>, <step>/sku/<SKU> or <step>/sku/<SKU>/locale/<locale>"))
        return
    for stray in sorted(p.name for p in folder.iterdir() if p.is_file()):
        if stray not in PARTS and not stray.startswith("."):
            report.add(Problem(f"{variant}/{stray}", None,
                               f"not a part: the parts are {', '.join(PARTS)}"))
    missing = [part for part in PARTS if not (folder / part).exists()]
    for part in missing:
        report.add(Problem(f"{variant}/{part}", None, "missing part"))
    if missing:
        return
    step, sku, locale = _split(variant)
    for name, purchase in SAMPLES.items():
        try:
            sample = with_sku_first(purchase, sku) if sku else purchase
        except ValidationError:
            report.add(Problem(variant, None, f"{sku!r} is not a valid SKU"))
            return
        context = purchase_context(renderer, step, sample, signing, locale=locale)
        _render_and_inspect(renderer, report, name, is_marketing,
                            lambda v=variant, c=context: renderer.render_variant(v, c), context)


def _check_choice(
    renderer: TemplateRenderer, signing: LinkSigning, report: Report, step: str, name: str,
    purchase: PurchaseEvent,
) -> None:
    """The variant a real send for this sample would choose renders too (fallbacks included)."""
    context = purchase_context(renderer, step, purchase, signing)
    _render_and_inspect(
        renderer, report, name, True,
        lambda: renderer.render(step, context, locale=purchase.customer.locale,
                                skus=skus_of(purchase)),
        context, unsubscribe=False,
    )


def _render_and_inspect(
    renderer: TemplateRenderer, report: Report, sample: str, is_marketing: bool,
    render: object, context: dict, *, unsubscribe: bool = True,
) -> None:
    report.renders += 1
    try:
        rendered: Rendered = render()  # type: ignore[operator]
    except TemplateProblem as problem:
        report.add(Problem(problem.file or "?", problem.line, problem.problem, sample))
        return
    html_file = f"{rendered.template_name}/body.html"
    text_file = f"{rendered.template_name}/body.txt"
    if unsubscribe and is_marketing:
        url = context["unsubscribe_url"]
        if url not in html_links(rendered.html):
            report.add(Problem(html_file, None, "marketing email without the unsubscribe link: "
                               "extend _shared/layout.html or link {{ unsubscribe_url }}", sample))
        if url not in rendered.text:
            report.add(Problem(text_file, None, "marketing email without the unsubscribe link: "
                               "extend _shared/layout.txt or show {{ unsubscribe_url }}", sample))
    referral = context.get("referral")
    for file, links in ((html_file, html_links(rendered.html)),
                        (text_file, text_links(rendered.text))):
        for link in links:
            ours = {context["unsubscribe_url"]: "/u/"}
            if referral:
                ours[referral["link"]] = "/r/"
            if link in ours and not is_safe_link(link):
                public = link.split(ours[link], 1)[0]
                report.add(Problem("LOYALLOOP_PUBLIC_URL", None, f"{public!r} is not https: "
                                   "unsubscribe and referral links would not be either",
                                   setting=True))
            elif not is_safe_link(link):
                where, line = _locate(renderer, file, link)
                report.add(Problem(where, line, f"link is not https: {link!r}", sample))
            elif referral and referral["code"] in link and link not in ours:
                report.add(Problem(file, None, "a link carrying the referral code that is not "
                                   "{{ referral.link }}: its clicks would not be counted",
                                   sample))


def _language_gaps(step: str, variants: list[str]) -> list[Problem]:
    """A product override beats a locale override: a `pt` customer buying that product gets
    the product's default language unless `sku/<SKU>/locale/pt` exists too."""
    split = [_split(v) for v in variants]
    locales = sorted({loc for _, sku, loc in split if loc and not sku})
    skus = sorted({sku for _, sku, loc in split if sku and not loc})
    return [
        Problem(f"{step}/sku/{sku}", None, f"no locale/{loc} here: {loc} customers buying {sku} "
                f"get this product override, not {step}/locale/{loc}")
        for sku in skus for loc in locales if f"{step}/sku/{sku}/locale/{loc}" not in variants
    ]


def _split(variant: str) -> tuple[str, str | None, str | None]:
    parts = variant.split("/")
    sku = parts[parts.index("sku") + 1] if "sku" in parts[1:] else None
    locale = parts[parts.index("locale") + 1] if "locale" in parts[1:] else None
    return parts[0], sku, locale


def _locate(renderer: TemplateRenderer, file: str, link: str) -> tuple[str, int | None]:
    """Where a bad link comes from: the part itself, a shared partial, or the shop and product
    data; else the part, without a line."""
    shared = renderer.root / SHARED
    files: Iterable[Path] = [renderer.root / file]
    if shared.is_dir():
        files = [*files, *sorted(p for p in shared.rglob("*") if p.is_file())]
    files = [*files, *(renderer.root / name for name in DATA_FILES)]
    parts = urlsplit(link.strip())
    origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
    for needle in (n for n in (link.strip(), origin) if n):
        for path in files:
            found = _line_of(path, needle)
            if found:
                return path.relative_to(renderer.root).as_posix(), found
    return file, None


def _line_of(path: Path, needle: str) -> int | None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return next((number for number, line in enumerate(lines, 1) if needle in line), None)
