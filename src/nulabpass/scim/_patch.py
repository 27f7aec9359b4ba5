"""The PATCH engine (RFC 7644 §3.5.2): add, replace and remove on SCIM documents.

Theory of operation
-------------------
:func:`parse_patch` validates a PatchOp message into :class:`PatchOperation` values. It
tolerates what identity providers send: operation names in any case (Entra's
``"Replace"``), a single operation object where a list belongs, and string booleans.

:func:`apply_patch` applies operations to a rendered User document and returns the new
document, which the caller validates exactly as a PUT body: mutability rules and type
checks live in one place. A path-less operation spreads its value over attributes,
accepting dotted paths (``"name.givenName"``) and extension URNs as keys (Entra) and
ignoring read-only attributes such as ``id`` (Okta repeats it in group renames).

Groups are never patched as documents: :func:`plan_group_patch` turns the operations
into a :class:`GroupPlan` (rename, members to add, members to remove), so that adding
one member to a group of any size is one row insert.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import attrs

from nulabpass.scim._errors import (
    ScimError,
    invalid_path,
    invalid_syntax,
    invalid_value,
    mutability,
    no_target,
)
from nulabpass.scim._evaluate import check_filter, matches
from nulabpass.scim._filter import (
    AttrPath,
    Compare,
    Filter,
    Or,
    PatchPath,
    ValuePath,
    parse_path,
)
from nulabpass.scim._mapping import coerce_bool, member_ids
from nulabpass.scim._schema import GROUP_RESOURCE, PATCH_OP, Attribute, ResourceSchema

__all__ = [
    "GroupPlan",
    "PatchOperation",
    "apply_patch",
    "only_active",
    "parse_patch",
    "plan_group_patch",
]

#: At most this many operations in one PATCH request.
MAX_OPERATIONS = 1000

Json = dict[str, Any]


@attrs.frozen(slots=True)
class PatchOperation:
    """One operation: ``op`` lower-cased, ``path`` parsed (``None``: path-less)."""

    op: str
    path: PatchPath | None
    value: Any


def parse_patch(body: object) -> list[PatchOperation]:
    """Validate a PatchOp request body."""
    if not isinstance(body, dict):
        raise invalid_syntax("The PATCH body must be a JSON object (a PatchOp message).")
    lowered = {k.lower(): v for k, v in body.items() if isinstance(k, str)}
    schemas = lowered.get("schemas")
    if schemas is not None and (
        not isinstance(schemas, list)
        or PATCH_OP.lower() not in {s.lower() for s in schemas if isinstance(s, str)}
    ):
        raise invalid_syntax(f"A PATCH body must list the schema {PATCH_OP}.")
    raw = lowered.get("operations")
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise invalid_syntax("A PATCH body needs a non-empty Operations list.")
    if len(raw) > MAX_OPERATIONS:
        raise invalid_syntax(f"A PATCH body may hold at most {MAX_OPERATIONS} operations.")
    ops: list[PatchOperation] = []
    for item in raw:
        if not isinstance(item, dict):
            raise invalid_syntax("Every PATCH operation must be an object.")
        entry = {k.lower(): v for k, v in item.items() if isinstance(k, str)}
        op = entry.get("op")
        if not isinstance(op, str) or op.lower() not in {"add", "replace", "remove"}:
            raise invalid_syntax(f"Unknown PATCH op {op!r}; use add, replace or remove.")
        path_text = entry.get("path")
        path: PatchPath | None = None
        if path_text is not None:
            if not isinstance(path_text, str):
                raise invalid_path("A PATCH path must be a string.")
            if path_text.strip():
                path = parse_path(path_text)
        if op.lower() == "remove" and path is None:
            raise no_target("A remove operation needs a path.")
        if op.lower() != "remove" and "value" not in entry:
            raise invalid_value(f"The {op} operation needs a value.")
        ops.append(PatchOperation(op.lower(), path, entry.get("value")))
    return ops


# ---------------------------------------------------------------------------------------
# Documents (Users)


def _key(doc: Mapping[str, Any], name: str) -> str:
    lowered = name.lower()
    for key in doc:
        if key.lower() == lowered:
            return key
    return name


def _container(doc: Json, urn: str | None, create: bool) -> Json | None:
    if urn is None:
        return doc
    key = _key(doc, urn)
    found = doc.get(key)
    if isinstance(found, dict):
        return found
    if not create:
        return None
    fresh: Json = {}
    doc[urn] = fresh
    schemas = doc.get("schemas")
    if isinstance(schemas, list) and urn not in schemas:
        schemas.append(urn)
    return fresh


def _same(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        va = {k.lower(): v for k, v in a.items()}
        vb = {k.lower(): v for k, v in b.items()}
        if "value" in va and "value" in vb:
            return bool(va["value"] == vb["value"])
        return va == vb
    return a == b


def _as_list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _merge(target: Json, value: Mapping[str, Any]) -> None:
    for k, v in value.items():
        target[_key(target, k)] = v


def _clear_other_primaries(items: list[Any], keep: Any) -> None:
    if not (isinstance(keep, dict) and keep.get("primary") in (True, "true", "True")):
        return
    for item in items:
        if item is not keep and isinstance(item, dict):
            item.pop(_key(item, "primary"), None)


def _equality_seed(node: Filter) -> Json | None:
    # Entra and Okta replace emails[type eq "work"].value on a user that has no work
    # email yet; the filter's equality then describes the value to create.
    if isinstance(node, Compare) and node.op == "eq" and isinstance(node.value, str):
        return {node.path.attr: node.value}
    return None


def _apply_path(  # noqa: PLR0915 - one branch per RFC 7644 §3.5.2 case reads best together
    doc: Json, op: str, pp: PatchPath, value: Any, resource: ResourceSchema, explicit: bool
) -> None:
    whole = resource.extension(f"{pp.path.urn}:{pp.path.attr}") if pp.path.urn else None
    if whole is not None and pp.filter is None and pp.path.sub is None:
        # The path names a whole extension: its value is an object of its attributes.
        if op == "remove":
            doc.pop(_key(doc, whole.id), None)
        elif isinstance(value, dict):
            _apply_pathless(doc, op, {whole.id: value}, resource)
        else:
            raise invalid_value(f"The value for {whole.id} must be an object.")
        return
    schema, spec = resource.resolve(pp.path.urn, pp.path.attr)
    if spec is None or (pp.path.urn is not None and schema is None):
        if explicit:
            raise invalid_path(f"The path {pp.path.text()} names no attribute of {resource.name}.")
        return
    sub_name = pp.sub or pp.path.sub
    sub_spec: Attribute | None = None
    if sub_name is not None:
        sub_spec = spec.sub(sub_name)
        if sub_spec is None:
            raise invalid_path(f"{spec.name} has no sub-attribute {sub_name}.")
    if spec.mutability == "readOnly" or (
        sub_spec is not None and sub_spec.mutability == "readOnly"
    ):
        if explicit:
            raise mutability(f"The attribute {pp.path.text()} is read-only.")
        return
    urn = schema.id if schema is not None and schema is not resource.core else None
    container = _container(doc, urn, create=op != "remove")
    if container is None:
        return
    key = _key(container, spec.name)
    if pp.filter is not None:
        _apply_filtered(container, key, op, pp, spec, sub_spec, value, resource)
        return
    if sub_spec is None:
        if op == "remove":
            if spec.multi_valued and isinstance(value, (list, dict)) and key in container:
                doomed = _as_list(value)
                container[key] = [
                    i for i in _as_list(container[key]) if not any(_same(i, d) for d in doomed)
                ]
            else:
                container.pop(key, None)
        elif spec.multi_valued:
            incoming = [copy.deepcopy(v) for v in _as_list(value)]
            current = _as_list(container.get(key) or []) if op == "add" else []
            for item in incoming:
                current = [c for c in current if not _same(c, item)]
                current.append(item)
                _clear_other_primaries(current, item)
            container[key] = current
        elif spec.type == "complex" and isinstance(value, dict):
            existing = container.get(key)
            merged: Json = dict(existing) if isinstance(existing, dict) else {}
            _merge(merged, value)
            container[key] = merged
        else:
            container[key] = value
        return
    # A sub-attribute without a filter.
    current_value = container.get(key)
    if spec.multi_valued:
        items = _as_list(current_value or [])
        if not items and op != "remove":
            container[key] = [{sub_spec.name: value}]
            return
        for item in items:
            if isinstance(item, dict):
                if op == "remove":
                    item.pop(_key(item, sub_spec.name), None)
                else:
                    item[_key(item, sub_spec.name)] = value
        return
    target = current_value if isinstance(current_value, dict) else {}
    if op == "remove":
        target.pop(_key(target, sub_spec.name), None)
    else:
        target[_key(target, sub_spec.name)] = value
    if target:
        container[key] = target
    else:
        container.pop(key, None)


def _apply_filtered(
    container: Json,
    key: str,
    op: str,
    pp: PatchPath,
    spec: Attribute,
    sub_spec: Attribute | None,
    value: Any,
    resource: ResourceSchema,
) -> None:
    if not spec.multi_valued or spec.type != "complex":
        raise invalid_path(f"{spec.name} is not multi-valued; a filter cannot select values.")
    assert pp.filter is not None  # noqa: S101 - the caller checked
    canonical = check_filter(ValuePath(AttrPath(spec.name), pp.filter), resource, in_document=True)
    assert isinstance(canonical, ValuePath)  # noqa: S101 - a value path stays one
    inner = canonical.filter
    items = [i for i in _as_list(container.get(key) or []) if isinstance(i, dict)]
    hits = [i for i in items if matches(inner, i, resource, spec)]
    if op == "remove":
        if sub_spec is None:
            container[key] = [i for i in items if i not in hits]
        else:
            for item in hits:
                item.pop(_key(item, sub_spec.name), None)
        return
    if not hits:
        seed = _equality_seed(inner)
        if seed is None:
            raise no_target(f"No value of {spec.name} matches the path's filter.")
        fresh: Json = dict(seed)
        if sub_spec is not None:
            fresh[sub_spec.name] = value
        elif isinstance(value, dict):
            _merge(fresh, value)
        items.append(fresh)
        container[key] = items
        return
    for item in hits:
        if sub_spec is not None:
            item[_key(item, sub_spec.name)] = value
        elif isinstance(value, dict):
            if op == "replace":
                item.clear()
            _merge(item, value)
        else:
            raise invalid_value(f"The value for {spec.name}[...] must be an object.")
    container[key] = items


def apply_patch(
    doc: Json, ops: list[PatchOperation], resource: ResourceSchema, *, in_place: bool = False
) -> Json:
    """Apply ``ops`` to a copy of ``doc`` and return it; with ``in_place``, to ``doc``
    itself (a document made for the purpose, which no one else holds)."""
    out = doc if in_place else copy.deepcopy(doc)
    for operation in ops:
        if operation.path is not None:
            _apply_path(out, operation.op, operation.path, operation.value, resource, True)
            continue
        if not isinstance(operation.value, dict):
            raise invalid_value(f"A path-less {operation.op} needs an object value.")
        _apply_pathless(out, operation.op, operation.value, resource)
    return out


def only_active(ops: list[PatchOperation]) -> bool | None:
    """The ``active`` value of a PATCH that does nothing but set it, or ``None``.

    Such a PATCH (how identity providers deactivate and reactivate) changes a stored
    User only in ``active``: rendering a stored User and validating it again gives back
    the same profile (a property test holds every attribute to it), and ``active`` is
    read on its own. So the result is the stored profile with that value, and the
    service skips the render, the patch and the validation. Only plain forms qualify:
    ``add`` or ``replace`` at path ``active``, or a path-less value holding ``active``
    alone, with a value ``coerce_bool`` takes; anything else gets ``None`` and the
    general path (with its errors).
    """
    found: bool | None = None
    for operation in ops:
        if operation.op not in ("add", "replace"):
            return None
        path = operation.path
        value: Any
        if path is None:
            if not isinstance(operation.value, dict) or len(operation.value) != 1:
                return None
            ((key, value),) = operation.value.items()
            if not isinstance(key, str) or key.lower() != "active":
                return None
        elif (
            path.filter is None
            and path.sub is None
            and path.path.urn is None
            and path.path.sub is None
            and path.path.attr.lower() == "active"
        ):
            value = operation.value
        else:
            return None
        if not isinstance(value, (bool, str)):
            return None
        try:
            found = coerce_bool(value, "active")
        except ScimError:
            return None
    return found


def _apply_pathless(
    doc: Json, op: str, value: Mapping[str, Any], resource: ResourceSchema
) -> None:
    for raw_key, item in value.items():
        if not isinstance(raw_key, str):
            continue
        key = raw_key.strip()
        if key.lower() == resource.core.id.lower() and isinstance(item, dict):
            _apply_pathless(doc, op, item, resource)
            continue
        ext = resource.extension(key) if key.lower().startswith("urn:") else None
        if ext is not None:
            if not isinstance(item, dict):
                raise invalid_value(f"The value of {ext.id} must be an object.")
            for sub_key, sub_value in item.items():
                path = PatchPath(AttrPath(sub_key, None, ext.id))
                _apply_path(doc, op, _dotted(path), sub_value, resource, False)
            continue
        if key.lower() == "schemas":
            continue
        try:
            path = parse_path(key)
        except ScimError:
            continue
        _apply_path(doc, op, path, item, resource, False)


def _dotted(path: PatchPath) -> PatchPath:
    attr = path.path.attr
    if "." in attr:
        head, _, sub = attr.partition(".")
        return PatchPath(AttrPath(head, sub, path.path.urn))
    return path


# ---------------------------------------------------------------------------------------
# Groups


@attrs.frozen(slots=True)
class GroupPlan:
    """What a Group PATCH changes. ``replace_members`` ``None``: membership is changed
    only by ``add`` and ``remove``; ``remove_all``: every member is removed first."""

    display_name: str | None = None
    external_id: str | None = None
    external_id_set: bool = False
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    remove_all: bool = False


def _ids_of(node: Filter) -> list[str]:
    if isinstance(node, Or):
        return _ids_of(node.left) + _ids_of(node.right)
    if (
        isinstance(node, Compare)
        and node.op == "eq"
        and isinstance(node.value, str)
        and node.path.attr.lower() == "value"
        and node.path.urn is None
        and node.path.sub is None
    ):
        return [node.value]
    raise invalid_path(
        'A member filter must select members by id, e.g. members[value eq "id"] '
        '(or several joined with "or").'
    )


def plan_group_patch(ops: list[PatchOperation]) -> GroupPlan:  # noqa: PLR0915
    """Turn Group PATCH operations into a :class:`GroupPlan` without reading members."""
    name: str | None = None
    external_id: str | None = None
    external_set = False
    add: dict[str, None] = {}
    remove: dict[str, None] = {}
    remove_all = False

    def set_attr(attr: str, val: Any, op: str) -> None:
        nonlocal name, external_id, external_set, remove_all
        lowered = attr.lower()
        if lowered == "displayname":
            if op == "remove":
                raise mutability("displayName is required and cannot be removed.")
            if not isinstance(val, str) or not val.strip():
                raise invalid_value("displayName must be a non-empty string.")
            name = val.strip()
        elif lowered == "externalid":
            external_set = True
            if op == "remove" or val is None:
                external_id = None
            elif isinstance(val, str):
                external_id = val
            else:
                raise invalid_value("externalId must be a string.")
        elif lowered == "members":
            if op == "remove":
                if val is None:
                    remove_all = True
                    add.clear()
                    remove.clear()
                else:
                    for ident in member_ids(val):
                        add.pop(ident, None)
                        remove[ident] = None
            else:
                if op == "replace":
                    remove_all = True
                    add.clear()
                    remove.clear()
                for ident in member_ids(val):
                    remove.pop(ident, None)
                    add[ident] = None
        elif lowered in {"id", "meta", "schemas"}:
            return
        else:
            resolved = GROUP_RESOURCE.resolve(None, attr)[1]
            if resolved is None:
                raise invalid_path(f"Groups have no attribute {attr}.")

    for operation in ops:
        path = operation.path
        if path is None:
            for key, val in operation.value.items():
                if isinstance(key, str):
                    set_attr(key, val, operation.op)
            continue
        if path.path.urn is not None and path.path.urn.lower() != GROUP_RESOURCE.core.id.lower():
            raise invalid_path(f"Groups have no extension {path.path.urn}.")
        if path.filter is not None:
            if path.path.attr.lower() != "members" or path.sub is not None:
                raise invalid_path(f"The path {path.path.text()}[...] is not supported.")
            ids = _ids_of(path.filter)
            if operation.op != "remove":
                raise invalid_path("Members are added with path members and a value list.")
            for ident in ids:
                add.pop(ident, None)
                remove[ident] = None
            continue
        if path.path.sub is not None:
            raise invalid_path(f"The path {path.path.text()} is not supported for Groups.")
        set_attr(path.path.attr, operation.value, operation.op)
    return GroupPlan(
        display_name=name,
        external_id=external_id,
        external_id_set=external_set,
        add=tuple(add),
        remove=tuple(remove),
        remove_all=remove_all,
    )
