"""Rendering a step's email from `templates/`, at send time, so an edit reaches the next send.

Layout (see docs/templates.md):

    templates/<step>/subject.txt, body.html, body.txt        the default
    templates/<step>/locale/<locale>/...                      per-locale override
    templates/<step>/sku/<SKU>/...                            per-product override
    templates/<step>/sku/<SKU>/locale/<locale>/...            both
    templates/_shared/...                                     layouts and partials
    templates/shops.json, templates/products.json             shop details, product tips

An override is a whole folder: the most specific one that exists is used for all three parts.
Rendering is sandboxed (no access to Python internals; size and time bounds: messages/sandbox.py),
HTML is autoescaped and undefined names fail, so a marketer's mistake fails the send (which
retries) instead of reaching a customer.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, TemplateError
from jinja2.sandbox import SecurityError

from messages.files import FileCache
from messages.sandbox import MessageSandbox, RenderLimit, render_capped

PARTS = ("subject.txt", "body.html", "body.txt")
SHARED = "_shared"
DATA_FILES = ("shops.json", "products.json")
MAX_SUBJECT_CHARS = 300
ELLIPSIS = "\u2026"


class TemplateProblem(Exception):
    """A template that cannot be rendered: names the file and, where known, the line."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        where = f"{file}:{line}: " if file and line else f"{file}: " if file else ""
        super().__init__(f"{where}{message}")
        self.file = file
        self.line = line
        self.problem = message


@dataclass(frozen=True)
class Rendered:
    template_name: str
    template_hash: str
    subject: str
    html: str
    text: str


def _environment(root: Path, autoescape: bool) -> MessageSandbox:
    return MessageSandbox(FileSystemLoader(str(root)), autoescape=autoescape)


class TemplateRenderer:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._files = FileCache()
        self._html = _environment(self.root, autoescape=True)
        self._text = _environment(self.root, autoescape=False)

    # What templates can see besides the purchase.

    def shop(self, shop_id: str) -> dict[str, Any]:
        shops = self._json("shops.json")
        found = shops.get(shop_id) or shops.get("default") or {}
        return {"id": shop_id, "name": shop_id, "address": "", "url": "https://shop.example",
                **found}

    def products(self) -> dict[str, dict[str, Any]]:
        return self._json("products.json")

    def _json(self, name: str) -> dict[str, Any]:
        try:
            loaded = self._files.json(os.path.join(self.root, name))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:  # JSONDecodeError, UnicodeDecodeError
            raise TemplateProblem(f"not valid JSON: {error}", file=name) from error
        if not isinstance(loaded, dict):
            raise TemplateProblem("expected a JSON object", file=name)
        return loaded

    # Choosing and rendering a step's template.

    def steps(self) -> list[str]:
        return sorted(
            p.name for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(("_", "."))
        )

    def variants(self, step: str) -> list[str]:
        """Every folder of a step that holds a template: the default and each override."""
        base = self.root / step
        found = [step] if any((base / part).exists() for part in PARTS) else []
        for folder in sorted(base.glob("**/*")):
            if folder.is_dir() and any((folder / part).exists() for part in PARTS):
                found.append(folder.relative_to(self.root).as_posix())
        return found

    def choose(self, step: str, locale: str, skus: Sequence[str]) -> str:
        """The most specific folder for this customer: product and locale, product, locale,
        then the default. A locale `pt-BR` falls back to `pt`."""
        locales = [locale] + ([locale.split("-")[0]] if "-" in locale else [])
        candidates = [f"{step}/sku/{sku}/locale/{loc}" for sku in skus for loc in locales]
        candidates += [f"{step}/sku/{sku}" for sku in skus]
        candidates += [f"{step}/locale/{loc}" for loc in locales]
        candidates.append(step)
        for name in candidates:
            if (self.root / name).is_dir() and (self.root / name / PARTS[0]).exists():
                return name
        raise TemplateProblem(f"no template for step {step!r}", file=f"{step}/{PARTS[0]}")

    def render(
        self, step: str, context: dict[str, Any], *, locale: str = "en", skus: Sequence[str] = ()
    ) -> Rendered:
        return self.render_variant(self.choose(step, locale, skus), context)

    def render_variant(self, name: str, context: dict[str, Any]) -> Rendered:
        context = _product_of_override(name, context)
        digests = []
        for part in PARTS:
            try:
                digests.append(self._files.digest(os.path.join(self.root, name, part)))
            except FileNotFoundError:
                raise TemplateProblem("missing part", file=f"{name}/{part}") from None
        subject = " ".join(self._render(self._text, f"{name}/subject.txt", context).split())
        if not subject:
            raise TemplateProblem("subject renders empty", file=f"{name}/subject.txt")
        subject = shorten(subject, MAX_SUBJECT_CHARS)
        html = self._render(self._html, f"{name}/body.html", context)
        text = self._render(self._text, f"{name}/body.txt", context)
        return Rendered(name, self._hash(digests), subject, html, text)

    def _render(self, env: MessageSandbox, name: str, context: dict[str, Any]) -> str:
        try:
            return render_capped(env.get_template(name), context)
        except RenderLimit as error:
            file, line = self._where(error, name)
            raise TemplateProblem(str(error), file=file, line=line) from error
        except SecurityError as error:
            file, line = self._where(error, name)
            raise TemplateProblem(f"not allowed: {error}", file=file, line=line) from error
        except TemplateError as error:
            file, line = self._where(error, name)
            raise TemplateProblem(f"{type(error).__name__}: {error.message}", file=file,
                                  line=line) from error
        except Exception as error:  # OverflowError, RecursionError, MemoryError, TypeError...
            file, line = self._where(error, name)
            raise TemplateProblem(_one_line(error), file=file, line=line) from error

    def _where(self, error: Exception, name: str) -> tuple[str, int | None]:
        """File (relative to the templates folder, as marketers name it) and line."""
        file, line = _where(error, name)
        path = Path(file)
        if path.is_absolute() and path.is_relative_to(self.root.resolve()):
            file = path.relative_to(self.root.resolve()).as_posix()
        elif path.is_absolute() and path.is_relative_to(self.root):
            file = path.relative_to(self.root).as_posix()
        return file, line

    def _hash(self, part_digests: list[bytes]) -> str:
        """Hash of the variant's parts, every shared partial and the shop and product data
        (tips, addresses), so support can tell exactly which version of the words a customer
        got."""
        digest = hashlib.sha256()
        for part in part_digests:
            digest.update(part)
        for name in self._shared_files():
            try:
                content = self._files.digest(os.path.join(self.root, name))
            except FileNotFoundError:
                continue  # removed since the folder was listed
            digest.update(name.encode())
            digest.update(content)
        return digest.hexdigest()

    def _shared_files(self) -> list[str]:
        """Every file under `_shared/`, then the data files, relative to the templates folder."""
        found = []
        for folder, _, files in os.walk(os.path.join(self.root, SHARED)):
            relative = os.path.relpath(folder, self.root).replace(os.sep, "/")
            found += [f"{relative}/{file}" for file in files]
        found.sort(key=lambda name: name.split("/"))  # as paths sort: folder by folder
        return found + [name for name in DATA_FILES if os.path.isfile(self.root / name)]


def shorten(text: str, limit: int) -> str:
    """A subject made long by the customer's data (a 200-character name, a 300-character
    product) is cut, not refused: refusing would hold the email and the rest of the lifecycle
    for ever. Cut at a word when one ends in the second half, else between characters as a
    reader sees them (never between a letter and its accent, nor inside an emoji sequence)."""
    if len(text) <= limit:
        return text
    cut = limit - len(ELLIPSIS)
    space = text.rfind(" ", 0, cut + 1)
    if space > limit // 2:
        cut = space
    while 0 < cut < len(text) and _continues(text[cut - 1], text[cut]):
        cut -= 1
    return text[:cut].rstrip(" ,;:-") + ELLIPSIS


def _continues(before: str, char: str) -> bool:
    """Whether `char` belongs to the same perceived character as `before`."""
    regional = ("\U0001f1e6" <= before <= "\U0001f1ff") and ("\U0001f1e6" <= char <= "\U0001f1ff")
    return (unicodedata.category(char) in ("Mn", "Mc", "Me") or "\u200d" in (before, char)
            or "\U0001f3fb" <= char <= "\U0001f3ff" or "\U000e0020" <= char <= "\U000e007f"
            or regional)


def _product_of_override(name: str, context: dict[str, Any]) -> dict[str, Any]:
    """In a product's override (`day_1/sku/KETTLE-1`), `product` is that product, wherever it
    sits in the order; elsewhere it stays the order's first item."""
    parts = name.split("/")
    if len(parts) < 3 or parts[1] != "sku":
        return context
    item = next((i for i in context.get("items") or () if i.get("sku") == parts[2]), None)
    return {**context, "product": item} if item is not None else context


def _one_line(error: Exception) -> str:
    """Any error a template's own code raised, as a line a marketer can act on."""
    message = str(error).strip().partition("\n")[0][:200]
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _where(error: Exception, fallback: str) -> tuple[str, int | None]:
    """File and line of an error: syntax errors carry them; runtime errors are found in the
    traceback's template frames."""
    name = getattr(error, "name", None) or getattr(error, "filename", None)
    line = getattr(error, "lineno", None)
    if name and line:
        return name, line
    tb = error.__traceback__
    found: tuple[str, int | None] = (fallback, None)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.endswith(".py") and filename != "<template>":
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found
