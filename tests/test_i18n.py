"""Map pages, legends, summaries and PNG/SVG in five languages: catalogues complete, language negotiated, numbers
formatted per locale, no English left on a translated page, technical identifiers untouched."""

from __future__ import annotations

import re
import string

import pytest

from maps.i18n import LANGUAGES, Tr, _translations, extract, negotiate
from spatial.io import load_dataset

OTHERS = [lang for lang in LANGUAGES if lang != "en"]


@pytest.fixture(scope="module")
def georgia(georgia_paths):
    p = georgia_paths
    return load_dataset(
        p["boundaries"], counts=p["counts"], key=p["key"], total=p["total"], groups=["foreign_born", "black"]
    )


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


@pytest.mark.parametrize("lang", OTHERS)
def test_every_message_is_translated_with_the_same_placeholders(lang):
    from babel.messages.pofile import read_po

    from maps.i18n import LOCALES

    with open(LOCALES / lang / "LC_MESSAGES" / "segmap.po", "rb") as f:
        catalog = read_po(f, locale=lang)
    missing, broken = [], []
    for msgid, where in extract().items():
        msg = catalog.get(msgid)
        if msg is None or not msg.string or msg.fuzzy:
            missing.append((msgid, where[0]))
        elif _fields(msg.string) != _fields(msgid):
            broken.append((msgid, msg.string))
    assert not missing, f"{lang}: untranslated messages {missing[:5]} (+{max(0, len(missing) - 5)})"
    assert not broken, f"{lang}: placeholders differ {broken[:3]}"
    assert len(extract()) > 100  # the extraction finds the code's and the templates' messages


def test_catalogues_compile_in_process():
    assert _translations("de").gettext("Legend") == "Legende"
    assert _translations("fr").gettext("High-High") == "Haut-Haut"
    assert _translations("en").gettext("Legend") == "Legend"


@pytest.mark.parametrize(
    ("lang", "header", "expected"),
    [
        ("de", None, "de"),
        ("pt-BR", None, "pt"),
        (None, "fr-CH, fr;q=0.9, en;q=0.8", "fr"),
        (None, "zh, es;q=0.5, de;q=0.7", "de"),  # highest q among those we have
        (None, "it, ja", "en"),
        ("xx", "es;q=0", "en"),  # q=0 means "not this one"
        (None, "de;q=abc, " * 500, "en"),  # hostile header: bounded, no error
        ("es", "de", "es"),  # the parameter wins over the header
    ],
)
def test_language_negotiation(lang, header, expected):
    assert negotiate(lang, header) == expected


def test_numbers_per_locale():
    # Expected strings written by hand from CLDR conventions (decimal comma, grouping, space before %).
    assert Tr("en").pct(0.1234) == "12.3%"
    assert Tr("de").pct(0.1234) == "12,3\xa0%"
    assert Tr("fr").pct(0.1234).replace("\u202f", "\xa0") == "12,3\xa0%"
    assert Tr("pt").pct(0.1234) == "12,3%"
    assert Tr("de").int(6999) == "6.999" and Tr("en").int(6999) == "6,999"
    assert Tr("es").num(0.05, 2) == "0,05" and Tr("en").p(0.00057) == "0.00057"


def _visible_text(page: str) -> str:
    body = page.split("<body", 1)[1]
    body = re.sub(r"<script.*?</script>", " ", body, flags=re.S)
    return re.sub(r"<[^>]+>", " ", body)


@pytest.fixture(scope="module")
def pages(georgia):
    from maps.views import PageOptions, render_page

    out = {}
    for lang in ("en", "de"):
        out[lang], _ = render_page(
            georgia, PageOptions(dataset_id="g", group="foreign_born", view="lisa", lang=lang, index_permutations=0)
        )
    return out


def test_a_german_page_shows_no_english_message(pages):
    page = pages["de"]
    assert '<html lang="de">' in page and '<html lang="en">' in pages["en"]
    text = _visible_text(page)
    tr = Tr("de")
    leftovers = []
    for msgid in extract():
        plain = re.sub(r"\{[^}]*\}", "\x00", msgid)
        pieces = [p.strip() for p in plain.split("\x00") if len(p.strip()) >= 12]
        if tr(msgid) != msgid:
            leftovers += [p for p in pieces if p in text and p not in tr(msgid)]
    assert not leftovers, leftovers[:5]
    for word in ("Legende", "Stadtweite Indizes", "Gebiet suchen", "Nicht signifikant", "Moran-Streudiagramm"):
        assert word in page
    # Technical identifiers stay: URLs and JSON keep view, group and label keys.
    assert "view=lisa" in page and '"high_high"' in page and "group=foreign_born" in page


def test_the_script_gets_its_words_and_locale(pages):
    cfg = re.search(r"segmapPage\.areas\([^,]+, [^,]+, (\{.*\})\);", pages["de"]).group(1)
    assert '"lang": "de"' in cfg and '"Nachbarn"' in cfg and '"Hoch-Hoch"' in cfg


def test_png_and_svg_in_german(georgia):
    from maps.data import view_data
    from maps.static import render

    vd = view_data(georgia, "foreign_born", "lisa")
    svg, alt = render(georgia, vd, "svg", tr=Tr("de"))
    text = svg.decode()
    assert "Nicht signifikant" in text and "Quelle:" in text and "Karte: segmap." in text
    assert alt.startswith("Karte: LISA-Cluster für foreign_born über 159 Gebiete.")
    assert "6.999 Permutationen" in text or "6.999 Permutationen" in alt
    english, _alt = render(georgia, vd, "svg")
    assert "Not significant" in english.decode() and "Nicht signifikant" not in english.decode()


@pytest.mark.server
def test_http_language_from_parameter_and_header(live_server):
    import httpx

    url = f"{live_server}/maps/georgia-1990/embed?group=black&view=share"
    de = httpx.get(url, headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}, timeout=120)
    en = httpx.get(url, timeout=120)
    fr = httpx.get(url + "&lang=fr", headers={"Accept-Language": "de"}, timeout=120)
    assert de.status_code == en.status_code == fr.status_code == 200
    assert de.headers["content-language"] == "de" and 'lang="de"' in de.text and "Legende" in de.text
    assert en.headers["content-language"] == "en" and "Legend" in en.text
    assert fr.headers["content-language"] == "fr" and "Légende" in fr.text
    assert "accept-language" in de.headers["vary"].lower()
    assert de.headers["etag"] != en.headers["etag"]  # a shared cache never hands one language to another
    svg = httpx.get(f"{live_server}/v1/datasets/georgia-1990/map.svg?group=black&view=share&lang=pt", timeout=120)
    assert svg.status_code == 200 and "Fonte:" in svg.text
