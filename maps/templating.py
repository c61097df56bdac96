"""Templates of the map pages (``maps/templates``) and the only ways text and data enter them.

HTML templates are autoescaped. Script templates accept nothing but JSON made by :func:`json_for_script` and
JavaScript identifiers (folium's variable names). Rendered pieces join the folium page as :class:`Text`, which
branca never parses again (see :class:`RenderOnce`).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from branca.element import Element, MacroElement
from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES = Path(__file__).parent / "templates"

# JSON inside <script>: "</script>", "<!--" and "&" must not reach the HTML parser, nor U+2028/9 an old JS parser.
_SCRIPT_ESCAPES = (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*\Z")


class ScriptJSON(str):
    """JSON text that is safe inside a ``<script>`` element: made only by :func:`json_for_script`."""


def json_for_script(value) -> ScriptJSON:
    """``value`` as JSON that is safe to place inside a ``<script>`` element (the only way data enters our scripts)."""
    text = json.dumps(value)
    for raw, escaped in _SCRIPT_ESCAPES:
        text = text.replace(raw, escaped)
    return ScriptJSON(text)


def _script_value(value):
    if isinstance(value, ScriptJSON) or (type(value) is str and _IDENTIFIER.match(value)):
        return value
    raise TypeError(f"Only json_for_script output or an identifier may enter a script template, got {value!r:.80}")


def _number(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.3f}"


def _percent(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.1%}"


_LOADER = FileSystemLoader(TEMPLATES)
HTML = Environment(loader=_LOADER, autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
HTML.filters.update(num=_number, pct=_percent)
SCRIPTS = Environment(
    loader=_LOADER,
    autoescape=False,
    undefined=StrictUndefined,
    finalize=_script_value,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_html(name: str, **context) -> str:
    return HTML.get_template(name).render(**context)


class Text(Element):
    """Finished markup added to a folium page as it is."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def render(self, **kwargs) -> str:
        return self.text


class RenderOnce(MacroElement):
    """A folium element whose rendered macros join the page as :class:`Text`.

    branca's ``MacroElement.render`` wraps each rendered macro in ``Element(text)``, which parses that text as a
    Jinja template a second time: a name holding ``{{ … }}`` would then run as code on the server. Every element
    that carries names or other data is rendered through this class instead.
    """

    def render(self, **kwargs):
        figure = self.get_root()
        module = self._template.module
        for part in ("header", "html", "script"):
            macro = getattr(module, part, None)
            if macro is not None:
                getattr(figure, part).add_child(Text(macro(self, kwargs)), name=self.get_name())
        for child in self._children.values():
            child.render(**kwargs)


class Wiring(RenderOnce):
    """The page's call into ``maps/web/segmap.js``: the embedded areas (``layer`` given) or the vector tiles."""

    def __init__(self, fmap, config: dict, layer=None):
        super().__init__()
        self._name = "SegmapWiring"
        self._template = SCRIPTS.get_template("wiring.js")
        self.map_name = fmap.get_name()
        self.layer_name = layer.get_name() if layer is not None else ""
        self.config = json_for_script(config)
