"""Languages of the map pages, legends, summaries and PNG/SVG maps.

Catalogues are gettext ``.po`` files in ``maps/locales/<lang>/LC_MESSAGES/segmap.po`` that a translator edits;
they are compiled in-process with Babel when first used (no build step) and kept per process. Numbers and
percentages are formatted per locale with Babel. Technical identifiers (views, groups, labels in JSON and URLs)
are never translated; only what the page shows is.
"""

from __future__ import annotations

import gettext
import io
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent

LOCALES = Path(__file__).parent / "locales"
LANGUAGES = ("en", "de", "es", "pt", "fr")
DEFAULT = "en"
DOMAIN = "segmap"


def _(message: str) -> str:
    """Marks a message for extraction where it is defined; it is translated where it is shown."""
    return message


@cache
def _translations(lang: str) -> gettext.NullTranslations:
    po = LOCALES / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if lang == DEFAULT or not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def negotiate(lang: str | None = None, accept_language: str | None = None) -> str:
    """The page language: ``lang`` if we have it, else the best of ``Accept-Language`` (q-values), else English."""
    if lang:
        base = lang.strip().lower().replace("_", "-").split("-")[0]
        if base in LANGUAGES:
            return base
    choices = []
    for n, part in enumerate((accept_language or "")[:1000].split(",")[:30]):
        tag, _sep, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        base = tag.strip().lower().split("-")[0]
        if base in LANGUAGES and math.isfinite(q) and q > 0:
            choices.append((-q, n, base))
    return min(choices)[2] if choices else DEFAULT


@dataclass(frozen=True)
class Tr:
    """A language: ``tr("text")`` translates, ``tr.pct``/``tr.num``/``tr.int`` format numbers for it."""

    lang: str = DEFAULT

    def __call__(self, message: str, **values) -> str:
        text = _translations(self.lang).gettext(message)
        return text.format(**values) if values else text

    def plural(self, singular: str, plural: str, n: int, **values) -> str:
        text = _translations(self.lang).ngettext(singular, plural, n)
        return text.format(n=self.int(n), **values)

    @property
    def locale(self) -> Locale:
        return Locale.parse(self.lang)

    def pct(self, v, digits: int = 1) -> str:
        """A share as a percentage in the locale's own pattern ("12.5%", "12,5 %"), ``digits`` decimals."""
        if v is None or not math.isfinite(float(v)):
            return "–"
        pattern = self.locale.percent_formats[None].pattern.replace("0", "0." + "0" * digits, 1) if digits else None
        return format_percent(float(v), pattern, locale=self.lang)

    def num(self, v, digits: int = 3) -> str:
        if v is None or not math.isfinite(float(v)):
            return "–"
        return format_decimal(float(v), "#,##0." + "0" * digits if digits else "#,##0", locale=self.lang)

    def int(self, v) -> str:
        return self.num(v, 0)

    def p(self, v) -> str:
        """A p-value with two significant digits."""
        if v is None or not math.isfinite(float(v)):
            return "–"
        v = float(v)
        digits = 2 if v >= 0.1 else min(8, 1 - math.floor(math.log10(max(v, 1e-8))))
        return self.num(v, digits)


ENGLISH = Tr()


def tr_for(lang: str | None) -> Tr:
    return Tr(lang if lang in LANGUAGES else DEFAULT)


def extract() -> dict[str, list[str]]:
    """Every message of the map code and templates (msgid → where it is): what each catalogue must translate."""
    from babel.messages.extract import extract_from_dir

    root = Path(__file__).parent
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        root, method_map, keywords={"_": None, "tr": None}, comment_tags=(), strip_comment_tags=True
    ):
        if isinstance(message, str) and not filename.startswith(("vendor", "batch")):
            found.setdefault(message, []).append(f"maps/{filename}:{lineno}")
    return found
