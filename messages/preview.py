"""What a customer would get for one step, as a page a marketer opens in a browser: the
subject, and the text part beside the HTML part. The CLI's `templates preview --out` and the
intake's `GET /templates/{name}/preview` both show this page."""

from __future__ import annotations

from html import escape

from messages.render import Rendered, TemplateProblem, TemplateRenderer
from messages.samples import LinkSigning, purchase_context, skus_of
from shop_events.schemas import PurchaseEvent

# The email's HTML runs in a sandboxed iframe with no scripts; only https images load.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-src 'self'"
)
PREVIEW_SECRET = "preview-only-not-a-working-token"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f4f5; color: #18181b; }
header { padding: 16px 24px; background: #fff; border-bottom: 1px solid #e4e4e7; }
h1 { font-size: 18px; margin: 0 0 8px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dt { color: #71717a; } dd { margin: 0; }
.subject { font-weight: 600; font-size: 16px; }
.parts { display: grid; grid-template-columns: 3fr 2fr; gap: 16px; padding: 16px 24px; }
section { background: #fff; border: 1px solid #e4e4e7; border-radius: 6px; padding: 8px 12px; }
h2 { font-size: 13px; text-transform: uppercase; color: #71717a; margin: 4px 0 8px; }
iframe { width: 100%; height: 640px; border: 0; }
pre { white-space: pre-wrap; font-size: 13px; margin: 0; }
.problem { margin: 24px; padding: 16px; background: #fef2f2; border: 1px solid #fca5a5; }
"""


def render_preview(
    renderer: TemplateRenderer, name: str, purchase: PurchaseEvent, signing: LinkSigning,
    *, locale: str | None = None,
) -> Rendered:
    """`name` is a step (the override is chosen as for a send) or one folder of it
    (`day_1/locale/pt`), rendered as is."""
    step = name.split("/", 1)[0]
    context = purchase_context(renderer, step, purchase, signing, locale=locale)
    if "/" in name:
        return renderer.render_variant(name, context)
    return renderer.render(step, context, locale=locale or purchase.customer.locale,
                           skus=skus_of(purchase))


def preview_page(rendered: Rendered, *, step: str, purchase_label: str) -> str:
    rows = [
        ("Subject", f'<span class="subject" id="subject">{escape(rendered.subject)}</span>'),
        ("Template", f"<code>{escape(rendered.template_name)}</code>"),
        ("Version", f'<code title="{rendered.template_hash}">{rendered.template_hash[:12]}</code>'),
        ("Purchase", escape(purchase_label)),
    ]
    return _page(
        f"{step}: {rendered.subject}",
        f"<header><h1>Preview of {escape(step)}</h1><dl>"
        + "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
        + "</dl></header><main class=\"parts\">"
        f'<section><h2>HTML part</h2><iframe sandbox title="HTML part" '
        f'srcdoc="{escape(rendered.html, quote=True)}"></iframe></section>'
        f'<section><h2>Text part</h2><pre id="text">{escape(rendered.text)}</pre></section>'
        "</main>",
    )


def problem_page(step: str, problem: TemplateProblem | str) -> str:
    return _page(
        f"{step}: does not render",
        f'<header><h1>Preview of {escape(step)}</h1></header><div class="problem">'
        f"<strong>This template does not render:</strong><pre>{escape(str(problem))}</pre>"
        "<p>Fix the file and reload; <code>loyalloop templates check</code> checks every "
        "template.</p></div>",
    )


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )
