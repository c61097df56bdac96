"""CQL2 filters, ``sortby`` and ``properties`` (OGC API – Features Part 3) over one collection's public frame.

Parsing is the ``cql2`` library's (text and JSON, both to CQL2-JSON); this module only evaluates that tree,
vectorised over the frame, with SQL's three-valued logic: a comparison with a null (a withheld count) is
unknown, never true, so ``x > 3`` and ``NOT x > 3`` both leave withheld areas out, whatever their hidden
counts. Every value comes from the protected frame: a filter cannot see more than the items show.
"""

from __future__ import annotations

import json
import re

import cql2
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .problems import ProblemError

LANGS = ("cql2-text", "cql2-json", "cql-text")  # cql-text: the draft name GDAL 3.6 sends; its simple filters parse
MAX_FILTER_CHARS = 8000  # the parser recurses: a bounded text bounds its depth
MAX_DEPTH = 200  # levels of the CQL2-JSON tree (an operator is two: its object and its args)
MAX_BRACKETS = 64
COMPARISONS = {
    "=": np.equal,
    "<>": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}
ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}
SPATIAL = {
    "s_intersects": "intersects",
    "s_within": "within",
    "s_contains": "contains",
    "s_disjoint": "disjoint",
    "s_equals": "geom_equals",
    "s_touches": "touches",
    "s_overlaps": "overlaps",
    "s_crosses": "crosses",
}
SUPPORTED = ["and", "or", "not", *COMPARISONS, "between", "in", "like", "isNull", *ARITHMETIC, *SPATIAL]


def bad_filter(detail: str, code: str = "bad_filter", **extra) -> ProblemError:
    return ProblemError(400, "Bad filter", detail, code=code, **extra)


def parse(text: str, lang: str | None) -> dict | bool:
    """The filter as CQL2-JSON (a 400 naming the line and column of a syntax error)."""
    lang = (lang or "cql2-text").lower()
    if lang not in LANGS:
        raise bad_filter(f"filter-lang must be one of {list(LANGS)}; got {lang!r}", "bad_filter_lang")
    if len(text) > MAX_FILTER_CHARS:
        raise bad_filter(f"filter is {len(text):,} characters long; at most {MAX_FILTER_CHARS:,} are accepted")
    # The parser recurses per bracket (and overflows the stack near 2,000): depth is checked on the text first.
    # cql2's own validate() is not used: its JSON Schema check takes exponential time in the nesting.
    if _brackets(text, escapes=lang == "cql2-json") > MAX_BRACKETS:
        raise bad_filter(f"filter nests brackets more than {MAX_BRACKETS} deep; simplify it")
    try:
        expr = cql2.parse_json(text) if lang == "cql2-json" else cql2.parse_text(text)
    except cql2.ParseError as exc:
        raise _syntax_error(str(exc), lang) from None
    except (cql2.ValidationError, ValueError) as exc:
        raise bad_filter(f"filter is not valid {lang}: {_first_line(str(exc))}") from None
    tree = expr.to_json()
    if _depth(tree) > MAX_DEPTH:
        raise bad_filter(f"filter is nested more than {MAX_DEPTH // 2} operators deep; simplify it")
    return tree


def _brackets(text: str, escapes: bool) -> int:
    """The deepest nesting of (), [] and {} outside quoted text (backslash escapes only in JSON strings)."""
    depth = deepest = 0
    quote, escaped = None, False
    for c in text:
        if quote:
            escaped, quote = (escapes and not escaped and c == "\\"), (None if c == quote and not escaped else quote)
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in ")]}":
            depth -= 1
    return deepest


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0][:300] if message.strip() else "unreadable"


def _syntax_error(message: str, lang: str) -> ProblemError:
    m = re.search(r"-->\s*(\d+):(\d+)", message) or re.search(r"line (\d+),? column (\d+)", message)
    line, column = (int(m.group(1)), int(m.group(2))) if m else (None, None)
    expected = re.search(r"=\s*(expected .*)", message)
    where = f"at line {line}, column {column}" if m else "(position unknown)"
    what = expected.group(1) if expected else _first_line(re.sub(r"\s*at line \d+,? column \d+", "", message))
    return bad_filter(
        f"filter: {lang} syntax error {where}: {what}",
        "filter_syntax",
        position={"line": line, "column": column},
    )


def _depth(node, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(node, dict):
        return max([_depth(v, level + 1) for v in node.values()], default=level)
    if isinstance(node, list):
        return max([_depth(v, level + 1) for v in node], default=level)
    return level


def kind_of(series: pd.Series) -> str:
    """JSON Schema type of a frame column."""
    if isinstance(series.dtype, gpd.array.GeometryDtype):
        return "geometry"
    if pd.api.types.is_bool_dtype(series.dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(series.dtype):
        return "integer"
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "number"
    return "string"


def fields(frame: pd.DataFrame) -> dict[str, str]:
    """Queryable name → JSON Schema type, in column order (the geometry last, as ``geometry``)."""
    out = {c: kind_of(frame[c]) for c in frame.columns if c != "geometry"}
    if "geometry" in frame.columns:
        out["geometry"] = "geometry"
    return out


def unknown_property(name: str, known: dict[str, str], what: str = "filter") -> ProblemError:
    return bad_filter(
        f"{what}: no property {name!r}; the queryables of this collection are {list(known)} "
        "(GET …/queryables gives their types)",
        "unknown_property",
        queryables=list(known),
    )


class _Eval:
    """Evaluates a CQL2-JSON tree over ``frame``: predicates give (true, known) masks, values (array, known)."""

    def __init__(self, frame: pd.DataFrame, known: dict[str, str]):
        self.frame, self.known, self.n = frame, known, len(frame)

    def predicate(self, node) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(node, bool):
            return np.full(self.n, node), np.ones(self.n, bool)
        if not isinstance(node, dict) or "op" not in node:
            raise bad_filter(f"filter: {json.dumps(node)[:100]} is a value where a condition was expected")
        op, args = node["op"], _args(node)
        if op in ("and", "or"):
            return self._logic(op, [self.predicate(a) for a in args])
        if op == "not":
            true, known = self.predicate(args[0])
            return ~true & known, known
        if op == "isNull":
            _, known, _ = self.value(args[0])
            return ~np.broadcast_to(known, self.n), np.ones(self.n, bool)
        if op in COMPARISONS or op in ("between", "in", "like"):
            return self._compare(op, args)
        if op in SPATIAL:
            return self._spatial(op, args)
        raise bad_filter(f"filter: segmap does not support {op!r}; supported: {SUPPORTED}", "unsupported_operator")

    @staticmethod
    def _logic(op: str, parts: list) -> tuple[np.ndarray, np.ndarray]:
        true, known = parts[0]
        for t, k in parts[1:]:
            if op == "and":  # false wins over unknown
                false = (~true & known) | (~t & k)
                true, known = true & t, (known & k) | false
            else:  # true wins over unknown
                true, known = true | t, (known & k) | true | t
        return true & known, known

    def _compare(self, op: str, args: list) -> tuple[np.ndarray, np.ndarray]:
        left, known, kind = self.value(args[0])
        if op == "between":
            lo, hi = (self._operand(a, kind, args[0]) for a in args[1:3])
            with np.errstate(invalid="ignore"):
                return self._mask((left >= lo[0]) & (left <= hi[0]), known & lo[1] & hi[1])
        if op == "in":
            values = [self._operand(a, kind, args[0])[0] for a in args[1]]
            return self._mask(np.isin(left, np.asarray(values, dtype=object if kind == "string" else float)), known)
        if op == "like":
            pattern, pk = self._operand(args[1], "string", args[0])
            if kind != "string":
                raise bad_filter(f"filter: LIKE compares text, but {_name(args[0])} is a {kind}")
            regex = re.compile(_like_regex(str(pattern)), re.DOTALL)
            return self._mask(np.array([bool(regex.fullmatch(str(v))) for v in left]), known & pk)
        right, rk = self._operand(args[1], kind, args[0])
        with np.errstate(invalid="ignore"):
            return self._mask(COMPARISONS[op](left, right), known & rk)

    def _mask(self, true, known) -> tuple[np.ndarray, np.ndarray]:
        known = np.broadcast_to(np.asarray(known, bool), self.n)
        return np.broadcast_to(np.asarray(true, bool), self.n) & known, known

    def _operand(self, node, kind: str, against) -> tuple:
        values, known, k = self.value(node)
        if k != kind and not (kind in ("number", "integer") and k in ("number", "integer")):
            raise bad_filter(
                f"filter: {_name(against)} is a {kind} but is compared with {_name(node)}, a {k}"
                + (f"; quote text, e.g. {_name(against)} = 'high_high'" if kind == "string" else "")
            )
        return values, known

    def value(self, node) -> tuple[np.ndarray | object, np.ndarray | bool, str]:
        """(values, known, kind) of an operand: a property, a literal or arithmetic on numbers."""
        if isinstance(node, dict) and "property" in node:
            return self._property(node["property"])
        if isinstance(node, bool):
            return node, True, "boolean"
        if isinstance(node, int | float):
            return float(node), True, "number"
        if isinstance(node, str):
            return node, True, "string"
        if isinstance(node, dict) and node.get("op") in ARITHMETIC:
            (a, ak, a_kind), (b, bk, b_kind) = (self.value(x) for x in _args(node))
            if {a_kind, b_kind} - {"number", "integer"}:
                raise bad_filter(f"filter: arithmetic ({node['op']}) needs numbers")
            with np.errstate(divide="ignore", invalid="ignore"):
                out = ARITHMETIC[node["op"]](np.asarray(a, float), np.asarray(b, float))
            return out, np.asarray(ak & bk) & np.isfinite(out), "number"
        if isinstance(node, dict) and node.get("op") not in (None, *SUPPORTED):
            raise bad_filter(
                f"filter: segmap does not support the function {node.get('op')!r}; supported: {SUPPORTED}",
                "unsupported_operator",
            )
        raise bad_filter(f"filter: {json.dumps(node)[:100]} is not a property, number or text here")

    def _property(self, name: str) -> tuple[np.ndarray, np.ndarray, str]:
        if name == "geometry" and name in self.known:
            raise bad_filter(
                "filter: geometry is compared only through a spatial function, e.g. S_INTERSECTS(geometry, POINT(lon lat))"
            )
        if name not in self.known:
            raise unknown_property(name, self.known)
        s, kind = self.frame[name], self.known[name]
        known = s.notna().to_numpy()
        if kind in ("number", "integer"):
            return s.to_numpy(dtype=float, na_value=np.nan), known, kind
        # Unknown cells get a stand-in that compares without error; ``known`` keeps them out of every result.
        return s.astype(object).where(known, "" if kind == "string" else False).to_numpy(), known, kind

    def _spatial(self, op: str, args: list) -> tuple[np.ndarray, np.ndarray]:
        geoms = [a for a in args if isinstance(a, dict) and a.get("property") == "geometry"]
        literal = [a for a in args if not (isinstance(a, dict) and "property" in a)]
        if len(geoms) != 1 or len(literal) != 1 or "geometry" not in self.known:
            raise bad_filter(f"filter: {op.upper()} compares the property geometry with one geometry literal (CRS84)")
        shape = _literal_geometry(literal[0])
        series = gpd.GeoSeries(self.frame["geometry"])
        result = getattr(series, SPATIAL[op])(shape).to_numpy(dtype=bool)
        if args[0] is not geoms[0] and op in ("s_within", "s_contains"):  # literal first: the converse relation
            result = getattr(series, SPATIAL["s_contains" if op == "s_within" else "s_within"])(shape).to_numpy(bool)
        return result, np.ones(self.n, bool)


ARITY = {"not": 1, "isNull": 1, "between": 3, **dict.fromkeys([*COMPARISONS, *ARITHMETIC, *SPATIAL, "in", "like"], 2)}


def _args(node: dict) -> list:
    """The operator's arguments, checked for number (cql2 parses JSON of any shape)."""
    op, args = node.get("op"), node.get("args")
    want = ARITY.get(op)
    if not isinstance(args, list) or (want is not None and len(args) != want) or (want is None and not args):
        need = f"{want} argument(s)" if want is not None else "a list of arguments"
        raise bad_filter(f"filter: {op!r} takes {need}; got {json.dumps(args)[:100]}")
    if op == "in" and not isinstance(args[1], list):
        raise bad_filter("filter: IN takes a list of values, e.g. label IN ('high_high', 'low_low')")
    return args


def _literal_geometry(node) -> shapely.Geometry:
    try:
        if "bbox" in node:
            box = [float(v) for v in node["bbox"]]
            return shapely.box(*(box[:2] + box[-3:-1] if len(box) == 6 else box))
        return shapely.geometry.shape(node)
    except (TypeError, ValueError, KeyError, AttributeError, shapely.errors.GEOSException):
        raise bad_filter(
            f"filter: {json.dumps(node)[:100]} is not a geometry: use WKT in CRS84, e.g. POINT(lon lat), or "
            "BBOX(minLon, minLat, maxLon, maxLat)"
        ) from None


def _name(node) -> str:
    if isinstance(node, dict) and "property" in node:
        return str(node["property"])
    return json.dumps(node)[:60]


def _like_regex(pattern: str) -> str:
    """CQL2 LIKE: % any run, _ one character, backslash escapes the next one."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return "".join(out)


def select(frame: pd.DataFrame, tree, known: dict[str, str]) -> np.ndarray:
    """Rows of ``frame`` where the filter is true (never where it is unknown)."""
    true, known_mask = _Eval(frame, known).predicate(tree)
    return np.asarray(true & known_mask, dtype=bool)


def parse_sortby(text: str | None, known: dict[str, str]) -> list[tuple[str, bool]]:
    """``sortby=+a,-b`` → [(a, ascending), (b, descending)], each a queryable."""
    keys = []
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        ascending = not part.startswith("-")
        name = part.lstrip("+-").strip()
        if name not in known or name == "geometry":
            raise unknown_property(name, {k: v for k, v in known.items() if k != "geometry"}, "sortby")
        keys.append((name, ascending))
    return keys


def sort(frame: pd.DataFrame, keys: list[tuple[str, bool]]) -> pd.DataFrame:
    """Stable sort by each key (nulls last), so equal rows keep their order and pages never overlap."""
    if not keys:
        return frame
    return frame.sort_values([k for k, _ in keys], ascending=[a for _, a in keys], kind="mergesort", na_position="last")


def parse_properties(text: str | None, known: dict[str, str]) -> list[str] | None:
    """``properties=a,b``: only these properties in each feature (None: all)."""
    if text is None:
        return None
    names = [p.strip() for p in text.split(",") if p.strip()]
    for name in names:
        if name not in known or name == "geometry":
            raise unknown_property(name, {k: v for k, v in known.items() if k != "geometry"}, "properties")
    return list(dict.fromkeys(names))
