"""Filters checked against a schema, and evaluated against JSON documents.

:func:`check_filter` resolves every attribute path of a parsed filter against a resource
type: unknown attributes, attributes that cannot be filtered and values of the wrong
type raise ``invalidFilter`` (never silently ignored). It returns the filter in a
canonical form that stores compile: names spelled as the schema spells them, extension
URNs only where they belong, and comparisons on a multi-valued attribute
(``emails.value co "x"``, ``emails co "x"``) rewritten to value paths
(``emails[value co "x"]``), so stores handle multi-valued attributes in one way.

:func:`matches` evaluates a canonical filter against a rendered resource (the memory
store and the PATCH engine use it), applying each attribute's ``caseExact`` rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from nulabpass.scim._errors import invalid_filter
from nulabpass.scim._filter import (
    And,
    AttrPath,
    Compare,
    Filter,
    Not,
    Or,
    Present,
    Scalar,
    ValuePath,
)
from nulabpass.scim._schema import Attribute, ResourceSchema

__all__ = ["check_filter", "check_sort", "compare", "matches", "parse_time"]


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime, or ``None`` when malformed."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _check_value(spec: Attribute, op: str, value: Scalar, where: str) -> Scalar:
    if value is None:
        return value
    kind = spec.type
    if kind == "boolean":
        if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            value = value.strip().lower() == "true"
        if not isinstance(value, bool) or op not in {"eq", "ne"}:
            raise invalid_filter(f"{where} is a boolean: compare it with eq or ne and true/false.")
        return value
    if kind == "complex":
        raise invalid_filter(f"{where} is complex: filter on one of its sub-attributes.")
    if isinstance(value, bool):
        raise invalid_filter(f"{where} is not a boolean; compare it with a {kind} value.")
    if kind == "dateTime":
        if not isinstance(value, str) or parse_time(value) is None:
            raise invalid_filter(f"{where} is a dateTime: compare it with an RFC 3339 string.")
        return value
    if kind in {"string", "reference"} and not isinstance(value, str):
        raise invalid_filter(f"{where} is a string: compare it with a quoted string.")
    return value


def _resolve(resource: ResourceSchema, path: AttrPath) -> tuple[Attribute, str | None]:
    schema, spec = resource.resolve(path.urn, path.attr)
    if spec is None or (path.urn is not None and schema is None):
        raise invalid_filter(f"The attribute {path.text()} is not supported by {resource.name}.")
    urn = schema.id if schema is not None and schema is not resource.core else None
    return spec, urn


def _leaf(
    spec: Attribute, sub: str | None, where: str, any_attr: bool
) -> tuple[Attribute, str | None]:
    if sub is None:
        return spec, None
    sub_spec = spec.sub(sub)
    if sub_spec is None or not (sub_spec.filterable or any_attr):
        raise invalid_filter(f"{where} names no sub-attribute of {spec.name} to filter on.")
    return sub_spec, sub_spec.name


def _check(
    node: Filter, resource: ResourceSchema, scope: Attribute | None, any_attr: bool
) -> Filter:
    if isinstance(node, And):
        return And(
            _check(node.left, resource, scope, any_attr),
            _check(node.right, resource, scope, any_attr),
        )
    if isinstance(node, Or):
        return Or(
            _check(node.left, resource, scope, any_attr),
            _check(node.right, resource, scope, any_attr),
        )
    if isinstance(node, Not):
        return Not(_check(node.inner, resource, scope, any_attr))
    if isinstance(node, ValuePath):
        spec, urn = _resolve(resource, node.path)
        if not spec.multi_valued or spec.type != "complex" or not (spec.filterable or any_attr):
            raise invalid_filter(
                f"{node.path.text()}[...] needs a multi-valued complex attribute that can be "
                "filtered."
            )
        inner = _check(node.filter, resource, spec, any_attr)
        return ValuePath(AttrPath(spec.name, None, urn), inner)
    path = node.path
    where = path.text()
    if scope is not None:
        if path.urn is not None or path.sub is not None:
            raise invalid_filter(f"Inside {scope.name}[...], {where} must name a sub-attribute.")
        leaf = scope.sub(path.attr)
        if leaf is None or not (leaf.filterable or any_attr):
            raise invalid_filter(f"{where} names no sub-attribute of {scope.name} to filter on.")
        canonical = AttrPath(leaf.name)
        if isinstance(node, Present):
            return Present(canonical)
        return Compare(canonical, node.op, _check_value(leaf, node.op, node.value, where))
    spec, urn = _resolve(resource, path)
    if not (spec.filterable or any_attr):
        raise invalid_filter(f"The attribute {where} cannot be used in a filter.")
    if spec.multi_valued and spec.type == "complex":
        # emails.value co "x" and emails co "x" both mean emails[value co "x"].
        sub_name = path.sub or "value"
        leaf = spec.sub(sub_name)
        if leaf is None or not (leaf.filterable or any_attr):
            raise invalid_filter(f"{where} names no sub-attribute of {spec.name} to filter on.")
        inner_path = AttrPath(leaf.name)
        element: Filter
        if isinstance(node, Present):
            element = Present(inner_path)
        else:
            element = Compare(inner_path, node.op, _check_value(leaf, node.op, node.value, where))
        return ValuePath(AttrPath(spec.name, None, urn), element)
    leaf_spec, sub = _leaf(spec, path.sub, where, any_attr)
    if leaf_spec.type == "complex" and isinstance(node, Compare):
        raise invalid_filter(f"{where} is complex: filter on one of its sub-attributes.")
    canonical = AttrPath(spec.name, sub, urn)
    if isinstance(node, Present):
        return Present(canonical)
    return Compare(canonical, node.op, _check_value(leaf_spec, node.op, node.value, where))


def check_filter(node: Filter, resource: ResourceSchema, *, in_document: bool = False) -> Filter:
    """Resolve ``node`` against ``resource``; raise ``invalidFilter`` for what it cannot
    evaluate. Returns the canonical filter.

    ``in_document``: the filter selects values inside one resource (a PATCH path such as
    ``phoneNumbers[type eq "work"].value``), so it may name attributes that stores
    cannot query (those declared not filterable)."""
    return _check(node, resource, None, in_document)


def check_sort(text: str, resource: ResourceSchema) -> AttrPath:
    """The canonical attribute ``sortBy`` names; ``invalidValue`` when it cannot sort."""
    from nulabpass.scim._errors import invalid_value
    from nulabpass.scim._filter import parse_filter

    try:
        node = parse_filter(f"{text} pr")
    except Exception:
        raise invalid_value(f"sortBy={text!r} is not an attribute path.") from None
    try:
        checked = check_filter(node, resource)
    except Exception:
        raise invalid_value(f"sortBy={text!r} names no attribute that can be sorted.") from None
    if not isinstance(checked, Present):
        raise invalid_value(f"sortBy={text!r} names a multi-valued attribute; it cannot sort.")
    return checked.path


# ---------------------------------------------------------------------------------------
# Evaluation


def _get(doc: Mapping[str, Any], name: str) -> Any:
    if name in doc:
        return doc[name]
    lowered = name.lower()
    for key, value in doc.items():
        if key.lower() == lowered:
            return value
    return None


def compare(actual: Any, op: str, expected: Scalar, *, case_exact: bool, kind: str) -> bool:
    """Whether ``actual op expected`` holds for one attribute value."""
    if expected is None:
        present = actual is not None and actual != ""
        return (not present) if op == "eq" else present if op == "ne" else False
    if actual is None:
        return op == "ne"
    if isinstance(expected, bool) or isinstance(actual, bool):
        if not (isinstance(expected, bool) and isinstance(actual, bool)):
            return False
        return (actual == expected) if op == "eq" else (actual != expected)
    left: Any = actual
    right: Any = expected
    if kind == "dateTime" and isinstance(actual, str) and isinstance(expected, str):
        left, right = parse_time(actual), parse_time(expected)
        if left is None or right is None:
            return False
    elif isinstance(left, str) and isinstance(right, str):
        if not case_exact:
            left, right = left.casefold(), right.casefold()
    elif not (isinstance(left, (int, float)) and isinstance(right, (int, float))):
        return False
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if op in {"co", "sw", "ew"}:
        if not isinstance(left, str) or not isinstance(right, str):
            return False
        if op == "co":
            return right in left
        return left.startswith(right) if op == "sw" else left.endswith(right)
    if op == "gt":
        return bool(left > right)
    if op == "ge":
        return bool(left >= right)
    if op == "lt":
        return bool(left < right)
    return bool(left <= right)


def _scope_doc(doc: Mapping[str, Any], urn: str | None) -> Mapping[str, Any]:
    if urn is None:
        return doc
    ext = _get(doc, urn)
    return ext if isinstance(ext, Mapping) else {}


def matches(
    node: Filter, doc: Mapping[str, Any], resource: ResourceSchema, scope: Attribute | None = None
) -> bool:
    """Whether the canonical filter ``node`` matches ``doc``."""
    if isinstance(node, And):
        return matches(node.left, doc, resource, scope) and matches(
            node.right, doc, resource, scope
        )
    if isinstance(node, Or):
        return matches(node.left, doc, resource, scope) or matches(
            node.right, doc, resource, scope
        )
    if isinstance(node, Not):
        return not matches(node.inner, doc, resource, scope)
    if isinstance(node, ValuePath):
        _, spec = resource.resolve(node.path.urn, node.path.attr)
        items = _get(_scope_doc(doc, node.path.urn), node.path.attr)
        if spec is None or not isinstance(items, list):
            return False
        return any(
            isinstance(item, Mapping) and matches(node.filter, item, resource, spec)
            for item in items
        )
    path = node.path
    if scope is not None:
        leaf = scope.sub(path.attr)
        value = _get(doc, path.attr)
    else:
        _, spec = resource.resolve(path.urn, path.attr)
        value = _get(_scope_doc(doc, path.urn), path.attr)
        leaf = spec
        if spec is not None and path.sub is not None:
            leaf = spec.sub(path.sub)
            value = _get(value, path.sub) if isinstance(value, Mapping) else None
    if leaf is None:
        return False
    if isinstance(node, Present):
        return value is not None and value not in ("", [], {})
    return compare(value, node.op, node.value, case_exact=leaf.case_exact, kind=leaf.type)
