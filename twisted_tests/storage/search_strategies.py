"""Hypothesis strategies for the differential search suite: data sets and queries.

Values are drawn from small vocabularies (so that filters and orders hit stored
data) mixed with arbitrary ones: ints (negative, around 2**53 and 2**63, beyond 64
bits), floats, strings with case, non-ASCII letters, ``%``, ``_`` and ``\\``, lists,
nested objects, nulls, missing keys, booleans, text for full-text search, several
profiles, services, nodes and types.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from twisted.words.protocols.jabber.jid import JID

from sat_storage.storage.search import OPERATORS

KEYS = ["a", "b", "A", "ñ", "x.y", "50%_", "sp ace", "[0]", "é"]
WORDS = [
    "hello", "Hello", "HÉLLO", "café", "Café", "CAFÉ", "cafe", "naïve", "straße", "STRASSE",
    "Ñandú", "ñandú", "ÑANDÚ", "xmpp", "XMPP", "e-mail", "50%", "a_b", "x", "über", "Über",
    "ΣΊΣΥΦΟΣ", "σίσυφος", "İstanbul", "istanbul", "ﬁsh", "日本語", "2024", "x1", "",
]  # fmt: skip
STRINGS = [*WORDS, "a%b", "a\\b", "%", "_", "\\", "A", "a", "Z", "z", "ß", "ẞ", "ǅ", "Ω", "ω"]
NUMBERS = [
    0, 1, -1, 2, 2.5, -2.5, 0.1, 0.30000000000000004, -0.0, 1e300, -1e-300, 10, 100,
    2**53, 2**53 + 1, float(2**53), 2**62, float(2**62), 2**63 - 1, -(2**63), 2**63,
    2**70, float(2**63), 1.5e19, -(2**62),
]  # fmt: skip
SERVICES = ["pubsub.example.org", "other.example.org"]
NODE_NAMES = ["urn:xmpp:microblog:0", "events", "Événements", "n%_"]
TYPES = [None, "blog", "Blog", "évent"]
SUBTYPES = [None, "x", "%_"]
ITEM_NAMES = ["a", "B", "b", "é", "Z", "10", "9", "a_b", "%"]
PROFILES = ["alice", "Bob", "çarol"]

# NUL is refused on every engine (tested apart): valid data and queries have none
strings = st.one_of(st.sampled_from(STRINGS), st.text(max_size=6).filter(lambda s: "\x00" not in s))
numbers = st.one_of(
    st.sampled_from(NUMBERS),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=8,
)
parsed_data = st.one_of(st.none(), st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5))
texts = st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join)


@st.composite
def data_sets(draw: st.DrawFn) -> dict[str, Any]:
    """Profiles with nodes, and batches of item writes (a later batch may update)."""
    profiles = draw(st.lists(st.sampled_from(PROFILES), min_size=1, max_size=3, unique=True))
    nodes = []
    for profile in profiles:
        identities = st.tuples(st.sampled_from(SERVICES), st.sampled_from(NODE_NAMES))
        for service, name in draw(st.lists(identities, min_size=1, max_size=2, unique=True)):
            node = {"profile": profile, "service": service, "name": name}
            node.update(type=draw(st.sampled_from(TYPES)), subtype=draw(st.sampled_from(SUBTYPES)))
            nodes.append(node)
    item = st.fixed_dictionaries(
        {
            "name": st.sampled_from(ITEM_NAMES),
            "title": texts,
            "content": texts,
            "parsed": parsed_data,
        }
    )
    writes = draw(
        st.lists(
            st.tuples(st.integers(0, len(nodes) - 1), st.lists(item, min_size=1, max_size=5)),
            min_size=1,
            max_size=6,
        )
    )
    return {"profiles": profiles, "nodes": nodes, "writes": writes}


def paths() -> st.SearchStrategy[list[str | int]]:
    step = st.one_of(st.sampled_from(KEYS), st.integers(-3, 3))
    return st.lists(step, min_size=1, max_size=3).filter(lambda p: isinstance(p[0], str))


def _value_for(op: str) -> st.SearchStrategy[Any]:
    base = OPERATORS[op]
    ordered = st.one_of(numbers.filter(_int64), strings)
    if base in ("eq", "ne"):
        return st.one_of(st.none(), st.booleans(), ordered)
    if base in ("gt", "ge", "lt", "le"):
        return ordered
    if base == "between":
        return st.one_of(
            st.lists(numbers.filter(_int64), min_size=2, max_size=2),
            st.lists(strings, min_size=2, max_size=2),
        )
    if base in ("in", "not_in"):
        return st.lists(st.one_of(st.none(), st.booleans(), ordered), max_size=4)
    if base in ("overlap", "disjoint"):
        return st.lists(ordered, max_size=4)
    if base in ("ioverlap", "idisjoint"):
        return st.lists(strings, max_size=4)
    pattern = st.lists(st.one_of(st.sampled_from(["%", "_", "\\%", "\\_", "\\\\"]), strings))
    # like family; a pattern may not end with a lone escape character
    return pattern.map("".join).filter(lambda p: not p.replace("\\\\", "").endswith("\\"))


def _int64(value: int | float) -> bool:
    return not isinstance(value, int) or -(2**63) < value < 2**63


@st.composite
def parsed_filters(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(sorted(OPERATORS)))
    return {"path": draw(paths()), "op": op, "value": draw(_value_for(op))}


FTS_TERMS = [w for w in WORDS if w] + ["hel*", "caf*", '"hello café"', '"x xmpp"*']


@st.composite
def fts_queries(draw: st.DrawFn) -> str:
    """A valid full-text query: groups of OR-ed terms, negated terms, ignored ones."""
    terms = st.lists(st.sampled_from(FTS_TERMS), min_size=1, max_size=3)
    groups = [" OR ".join(g) for g in draw(st.lists(terms, min_size=1, max_size=3))]
    text = draw(st.sampled_from([" ", " AND ", " & "])).join(groups)  # "&": no word, ignored
    for term in draw(st.lists(st.sampled_from(FTS_TERMS), max_size=2)):
        text += f" -{term}"
    return text


@st.composite
def order_entries(draw: st.DrawFn, with_fts: bool) -> dict[str, Any]:
    orders = ["creation", "modification", "item_id"] + (["rank"] if with_fts else [])
    entry: dict[str, Any] = draw(
        st.one_of(
            st.sampled_from(orders).map(lambda o: {"order": o}),
            paths().map(lambda p: {"path": p}),
        )
    )
    direction = draw(st.sampled_from([None, "asc", "desc", "DESC", "Asc"]))
    if direction is not None:
        entry["direction"] = direction
    return entry


def _some(values: list[Any], extra: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    element = (
        st.sampled_from(values) if extra is None else st.one_of(st.sampled_from(values), extra)
    )
    return st.one_of(st.none(), st.lists(element, max_size=3))


@st.composite
def queries(draw: st.DrawFn, profiles: list[str]) -> tuple[dict[str, Any], bool]:
    """A valid query over ``profiles``'s data, and its all_profiles flag."""
    query: dict[str, Any] = {}
    all_profiles = draw(st.booleans())
    scope = draw(
        st.lists(st.sampled_from(profiles), min_size=0 if all_profiles else 1, unique=True)
    )
    if scope or not all_profiles:
        query["profiles"] = scope
    for key, values, extra in (
        ("nodes", NODE_NAMES, None),
        ("services", SERVICES, st.sampled_from(SERVICES).map(JID)),
        ("names", ITEM_NAMES, None),
        ("types", TYPES, None),
        ("subtypes", SUBTYPES, None),
    ):
        if draw(st.integers(0, 4)) == 0:
            query[key] = draw(_some(values, extra))
    if draw(st.booleans()):
        query["parsed"] = draw(st.lists(parsed_filters(), max_size=3))
    with_fts = draw(st.integers(0, 3)) == 0
    if with_fts:
        query["fts"] = draw(fts_queries())
    if draw(st.booleans()):
        query["order-by"] = draw(st.lists(order_entries(with_fts), max_size=3))
    if draw(st.integers(0, 3)) == 0:
        query["index"] = draw(st.integers(0, 5))
    if draw(st.integers(0, 3)) == 0:
        query["limit"] = draw(st.integers(0, 5))
    return query, all_profiles


# --- invalid queries: (query, all_profiles, the culprit the error must name) ---------

LIST_KEYS = ["profiles", "nodes", "services", "names", "types", "subtypes"]
BAD_PATHS = ["a", [], [1.5], [True], ["a", None], ['a"b'], ["a\\b"], ["a\x00"], [2**40], ["a"] * 33]
BAD_VALUES = {
    "eq": [[1], {"a": 1}, float("nan"), float("inf"), 2**64, -(2**63), "a\x00", b"a", object()],
    "gt": [None, True, [1], float("-inf")],
    "between": [5, [1], [1, 2, 3], [1, "b"], [None, 2], [True, False], "ab"],
    "in": [5, "abc", [[1]], [{"a": 1}], [float("nan")], list(range(501))],
    "overlap": ["x", [None], [True], [[1]]],
    "ioverlap": [[1], [None], "x"],
    "like": [5, None, "ab\\", ["a"]],
}
BAD_ORDERS = [
    ("order-by", {"order": "creation"}),
    ("order-by", "creation"),
    ("order-by[{i}]", ["creation"]),
    ("order-by[{i}]", {}),
    ("order-by[{i}]", {"order": "creation", "path": ["a"]}),
    ("dir", {"order": "creation", "dir": "asc"}),
    ("'size'", {"order": "size"}),
    ("order-by[{i}].order", {"order": ["creation"]}),
    ("'up'", {"order": "creation", "direction": "up"}),
    ("order-by[{i}].direction", {"order": "creation", "direction": 1}),
    ("rank", {"order": "rank"}),
    ("order-by[{i}].path", {"path": "a"}),
    ("order-by[{i}].path", {"path": [1.5]}),
]
BAD_FILTERS = [
    ["a", "eq", 1],
    {"path": ["a"], "op": "eq"},
    {"path": ["a"], "op": "eq", "value": 1, "x": 2},
    None,
]
OP_FAMILY = {"eq": "eq", "ne": "eq", "gt": "gt", "ge": "gt", "lt": "gt", "le": "gt",
             "between": "between", "in": "in", "not_in": "in", "overlap": "overlap",
             "disjoint": "overlap", "ioverlap": "ioverlap", "idisjoint": "ioverlap",
             "like": "like", "ilike": "like", "not_like": "like", "not_ilike": "like"}  # fmt: skip


@st.composite
def invalid_queries(draw: st.DrawFn, profiles: list[str]) -> tuple[Any, Any, str]:
    """A query made invalid by one mistake, and the name its error must contain."""
    query, all_profiles = draw(queries(profiles))
    query.pop("fts", None)  # so that "rank" is refused for lacking it
    query = {
        k: v
        for k, v in query.items()
        if k != "order-by" or not any("order" in e and e["order"] == "rank" for e in v)
    }
    kind = draw(st.sampled_from(
        ["key", "list", "element", "nul", "size", "filters", "filter", "op", "path", "value",
         "order", "count", "fts", "flag", "scope", "query"]
    ))  # fmt: skip
    parsed = list(query.get("parsed") or [])
    i = len(parsed)
    if kind == "key":
        key = draw(st.sampled_from(["order_by", "Profiles", "fulltext", "offset", ""]))
        return {**query, key: []}, all_profiles, repr(key)
    if kind in ("list", "element", "nul", "size"):
        key = draw(st.sampled_from(LIST_KEYS))
        if key == "profiles":
            all_profiles = False
        bad = {"list": "events", "element": [1], "nul": ["a\x00b"], "size": ["x"] * 501}[kind]
        if kind == "element" and key in ("types", "subtypes"):
            bad = [["blog"]]
        return {**query, key: bad}, all_profiles, key if kind in ("list", "size") else f"{key}[0]"
    if kind == "filters":
        return {**query, "parsed": {"path": ["a"], "op": "eq", "value": 1}}, all_profiles, "parsed"
    if kind == "filter":
        bad = draw(st.sampled_from(BAD_FILTERS))
        return {**query, "parsed": [*parsed, bad]}, all_profiles, f"parsed[{i}]"
    if kind == "op":
        op = draw(st.sampled_from(["~=", "EQ", "equals", "", 1, None]))
        bad = {"path": ["a"], "op": op, "value": 1}
        return {**query, "parsed": [*parsed, bad]}, all_profiles, f"parsed[{i}].op"
    if kind == "path":
        bad = {"path": draw(st.sampled_from(BAD_PATHS)), "op": "eq", "value": 1}
        return {**query, "parsed": [*parsed, bad]}, all_profiles, f"parsed[{i}].path"
    if kind == "value":
        op = draw(st.sampled_from(sorted(OPERATORS)))
        value = draw(st.sampled_from(BAD_VALUES[OP_FAMILY[OPERATORS[op]]]))
        bad = {"path": ["a"], "op": op, "value": value}
        return {**query, "parsed": [*parsed, bad]}, all_profiles, f"parsed[{i}].value"
    if kind == "order":
        entries = list(query.get("order-by") or [])
        culprit, bad = draw(st.sampled_from(BAD_ORDERS))
        if culprit == "order-by":
            return {**query, "order-by": bad}, all_profiles, culprit
        culprit = culprit.format(i=len(entries))
        return {**query, "order-by": [*entries, bad]}, all_profiles, culprit
    if kind == "count":
        key = draw(st.sampled_from(["index", "limit"]))
        return (
            {**query, key: draw(st.sampled_from([-1, "20", True, 2**64, 1.0]))},
            all_profiles,
            key,
        )
    if kind == "fts":
        fts = draw(st.sampled_from(['"unclosed', "a OR", "-only", "***", "OR a", 42, "a* b*c"]))
        return {**query, "fts": fts}, all_profiles, "fts"
    if kind == "flag":
        return query, draw(st.sampled_from(["no", 1, 0, None, "True"])), "all_profiles"
    if kind == "scope":
        return {k: v for k, v in query.items() if k != "profiles"}, False, "profiles"
    return [("profiles", profiles)], all_profiles, "dict"
