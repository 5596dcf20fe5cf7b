"""`loyalloop templates`: check every template before it reaches a customer, and preview what
one customer would get."""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import fail, read_event, settings_or_fail
from messages.check import check_templates
from messages.preview import PREVIEW_SECRET, preview_page, render_preview
from messages.render import TemplateProblem, TemplateRenderer
from messages.samples import SAMPLES, LinkSigning
from shop_events.schemas import LOCALE, PurchaseEvent

FOLDER = click.option(
    "--dir", "folder", type=click.Path(path_type=Path, file_okay=False), default=None,
    help="Templates folder (default: LOYALLOOP_TEMPLATES_DIR, else templates/).",
)


@click.group()
def templates() -> None:
    """Marketers' email templates: check them, preview them."""


@templates.command()
@FOLDER
def check(folder: Path | None) -> None:
    """Render every step and override against sample purchases; exit 1 on any problem."""
    settings = settings_or_fail()
    root = folder or settings.templates_dir
    try:
        steps = settings.rules().steps
    except (OSError, ValueError, TypeError) as error:
        fail(f"rules ({settings.rules_file}): {error}")
        raise
    marketing = {rule.step: rule.marketing for rule in steps}
    signing = LinkSigning(settings.public_url, PREVIEW_SECRET)
    report = check_templates(TemplateRenderer(root), signing, marketing)
    shown = _shown(root)
    for warning in report.warnings:
        click.echo(f"{warning.where(shown)}: warning: {warning.message}")
    for problem in report.problems:
        sample = f" (sample purchase {problem.sample})" if problem.sample else ""
        click.echo(f"{problem.where(shown)}: {problem.message}{sample}")
    summary = (f"{len(report.variants)} templates of {len(report.steps)} steps, "
               f"{report.renders} renders against {len(SAMPLES)} sample purchases")
    if report.problems:
        click.echo(f"{len(report.problems)} problem(s) in {summary}", err=True)
        raise SystemExit(1)
    click.echo(f"ok: {summary}")


@templates.command()
@click.argument("name")
@click.option("--purchase", "purchase_file", required=True,
              type=click.Path(path_type=Path, dir_okay=False),
              help="A purchase event (JSON, as a shop sends it).")
@click.option("--locale", help="Show it in this locale instead of the customer's.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the preview page (subject, HTML and text side by side) here.")
@FOLDER
def preview(name: str, purchase_file: Path, locale: str | None, out: Path | None,
            folder: Path | None) -> None:
    """What this purchase's customer would get for step NAME (or one override folder of it,
    such as day_1/locale/pt)."""
    settings = settings_or_fail()
    renderer = TemplateRenderer(folder or settings.templates_dir)
    purchase = read_event(purchase_file, PurchaseEvent)
    if locale is not None and not LOCALE.match(locale):
        fail(f"--locale {locale!r}: must be a language tag such as en, pt or pt-BR")
    step = name.split("/", 1)[0]
    if not renderer.root.is_dir() or step not in renderer.steps() or ".." in name.split("/"):
        known = ", ".join(renderer.steps()) if renderer.root.is_dir() else "none"
        fail(f"{name}: no such template step in {renderer.root} (steps: {known})")
    try:
        rendered = render_preview(renderer, name, purchase,
                                  LinkSigning(settings.public_url, PREVIEW_SECRET), locale=locale)
    except TemplateProblem as problem:
        where = _shown(renderer.root) / (problem.file or "")
        fail(f"{where}{f':{problem.line}' if problem.line else ''}: {problem.problem}", code=1)
        raise
    click.echo(f"Template: {rendered.template_name} (version {rendered.template_hash[:12]})")
    click.echo(f"Subject: {rendered.subject}")
    if out is not None:
        label = f"order {purchase.order_id} of {purchase.shop_id} ({purchase_file.name})"
        try:
            out.write_text(preview_page(rendered, step=step, purchase_label=label),
                           encoding="utf-8")
        except OSError as error:
            fail(f"--out {out}: {error.strerror}")
        click.echo(f"Wrote {out}: open it in a browser to see the HTML beside the text.")
        return
    click.echo(f"\n--- text part ---\n{rendered.text}\n\n--- HTML part ---\n{rendered.html}")


def _shown(root: Path) -> Path:
    """The folder as the person typed it, relative to here when it is below here."""
    try:
        return root.resolve().relative_to(Path.cwd())
    except ValueError:
        return root

