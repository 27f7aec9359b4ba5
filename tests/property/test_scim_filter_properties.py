"""Properties of the SCIM filter parser: it never fails in any other way than a SCIM
error, and formatting a tree gives text that parses back to the same tree."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nulabpass.scim import (
    And,
    AttrPath,
    Compare,
    Filter,
    Not,
    Or,
    Present,
    ScimError,
    ValuePath,
    format_filter,
    parse_filter,
    parse_path,
)

FILTER_ALPHABET = st.sampled_from(
    [*list('abcdeNOTnotandorpr eqnecoswgtle()[]".:$-_0123456789\\ urn:\t\n'), "é", "\x00"]
)

names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,8}", fullmatch=True).filter(
    lambda s: s.lower() not in {"not", "and", "or", "pr", "true", "false", "null"}
)
urns = st.sampled_from(
    [None, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "urn:x:y"]
)
paths = st.builds(AttrPath, names, st.none() | names, urns)
strings = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
values = st.one_of(
    strings,
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(float),
    st.booleans(),
    st.none(),
)


@st.composite
def comparisons(draw: st.DrawFn, path_strategy: st.SearchStrategy[AttrPath]) -> Filter:
    path = draw(path_strategy)
    value = draw(values)
    if value is None or isinstance(value, bool):
        op = draw(st.sampled_from(["eq", "ne"]))
    elif isinstance(value, str):
        op = draw(st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]))
    else:
        op = draw(st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]))
    return Compare(path, op, value)


def trees(
    leaf_paths: st.SearchStrategy[AttrPath], allow_value_paths: bool
) -> st.SearchStrategy[Filter]:
    leaves: st.SearchStrategy[Filter] = st.one_of(
        comparisons(leaf_paths), st.builds(Present, leaf_paths)
    )
    if allow_value_paths:
        simple = st.builds(AttrPath, names, st.none(), urns)
        leaves = leaves | st.builds(
            ValuePath, simple, trees(st.builds(AttrPath, names), allow_value_paths=False)
        )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(And, inner, inner), st.builds(Or, inner, inner), st.builds(Not, inner)
        ),
        max_leaves=8,
    )


@settings(max_examples=400)
@given(st.text(FILTER_ALPHABET, max_size=80))
def test_the_filter_parser_raises_only_scim_errors_on_arbitrary_text(text: str) -> None:
    kind = None
    try:
        parse_filter(text)
    except ScimError as exc:
        kind = exc.scim_type
    assert kind in {None, "invalidFilter"}


@settings(max_examples=200)
@given(st.text(max_size=60))
def test_the_path_parser_raises_only_scim_errors_on_arbitrary_unicode(text: str) -> None:
    kind = None
    try:
        parse_path(text)
    except ScimError as exc:
        kind = exc.scim_type
    assert kind in {None, "invalidPath"}


@settings(max_examples=400)
@given(trees(paths, allow_value_paths=True))
def test_formatting_a_filter_tree_round_trips_through_the_parser(tree: Filter) -> None:
    assert parse_filter(format_filter(tree)) == tree
