"""Export formats: CSV rows, JSON Lines and OCSF records, with OCSF class checks.

OCSF mapping (schema 1.1.0, category 3 "Identity & Access Management"):

- sign-in outcomes (an action in category ``sign_in``, or named ``*.sign_in*``) become
  **Authentication** (class 3002), activity Logon (1), ``user`` = the person signing in;
- account lifecycle changes become **Account Change** (class 3001), ``user`` = the
  account changed: created (Create 1), reactivated (Enable 2), deactivated (Disable 5),
  deleted (Delete 6), any other change of an account Other (99);
- everything else becomes **Entity Management** (class 3004), ``entity`` = the first
  target (or the organization), activity Create (1), Read (2), Update (3) or Delete (4)
  judged by the action's verb, Other (99) otherwise.

Every record carries the base event attributes (``time`` in epoch milliseconds,
``severity_id``, ``status_id`` from the outcome, ``metadata.product``, ``type_uid`` =
class * 100 + activity), the actor as ``actor.user`` and the request as
``src_endpoint.ip`` and ``http_request.user_agent``; nulabpass's own action name and
metadata are under ``unmapped``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from nulabpass.audit._chain import format_time
from nulabpass.audit._model import EventRecord, Outcome, PersonalDatum
from nulabpass.audit.verifier import event_to_json

__all__ = [
    "CSV_COLUMNS",
    "OCSF_CLASSES",
    "OCSF_VERSION",
    "csv_header",
    "csv_row",
    "jsonl_line",
    "ocsf_line",
    "ocsf_record",
    "validate_ocsf",
]

OCSF_VERSION = "1.1.0"

CSV_COLUMNS = (
    "ID",
    "Date",
    "Product",
    "Category",
    "Action",
    "Operator ID",
    "Operator name",
    "Operator email",
    "IP address",
    "User agent",
    "Outcome",
    "Target",
)

# Spreadsheet programs run cells that start with these as formulas (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _csv_line(values: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue()


def csv_header() -> str:
    """The CSV header line."""
    return _csv_line(CSV_COLUMNS)


def _values(data: Sequence[PersonalDatum]) -> dict[str, str]:
    return {d.slot: d.value for d in data if d.value is not None}


def _target_text(event: EventRecord, values: Mapping[str, str]) -> str:
    parts = []
    for i, t in enumerate(event.targets):
        text = f"{t.type}:{t.id}"
        name, email = values.get(f"target.{i}.name"), values.get(f"target.{i}.email")
        if name or email:
            text += " (" + " ".join(p for p in (name, f"<{email}>" if email else None) if p) + ")"
        parts.append(text)
    return "; ".join(parts)


def csv_row(event: EventRecord, data: Sequence[PersonalDatum]) -> str:
    """One CSV line for ``event``."""
    values = _values(data)
    return _csv_line(
        [
            _cell(event.id),
            format_time(event.occurred_at),
            _cell(event.context.get("product")),
            _cell(event.category),
            _cell(event.action),
            _cell(event.actor_id),
            _cell(values.get("actor.name") or event.context.get("actor_display")),
            _cell(values.get("actor.email")),
            _cell(values.get("context.ip")),
            _cell(values.get("context.user_agent")),
            event.outcome.value,
            _cell(_target_text(event, values)),
        ]
    )


def jsonl_line(event: EventRecord, data: Sequence[PersonalDatum]) -> str:
    """One JSON Lines record: the event with what is needed to re-verify its hash."""
    return _dump(event_to_json(event, data))


def _dump(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


# -- OCSF ----------------------------------------------------------------------------------

#: The OCSF classes this export emits: uid, name, category and required attributes with
#: their JSON types (base event attributes included).
OCSF_CLASSES: dict[int, dict[str, Any]] = {
    3001: {
        "name": "Account Change",
        "category_uid": 3,
        "activities": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 99},
        "required": {"user": dict},
    },
    3002: {
        "name": "Authentication",
        "category_uid": 3,
        "activities": {1, 2, 3, 4, 5, 6, 99},
        "required": {"user": dict},
    },
    3004: {
        "name": "Entity Management",
        "category_uid": 3,
        "activities": {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 99},
        "required": {"entity": dict},
    },
}

_BASE_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "activity_id": int,
    "category_uid": int,
    "class_uid": int,
    "metadata": dict,
    "severity_id": int,
    "time": int,
    "type_uid": int,
    "status_id": int,
}

_ACCOUNT_CHANGES = {
    "account.registered": 1,
    "managed_account.created": 1,
    "account.reactivated": 2,
    "managed_account.reactivated": 2,
    "account.deactivated": 5,
    "managed_account.deactivated": 5,
    "managed_account.deleted": 6,
    "account.profile_updated": 99,
    "managed_account.released": 99,
    "managed_account.invitation_accepted": 99,
}

_VERBS = {
    "created": 1,
    "added": 1,
    "registered": 1,
    "requested": 1,
    "read": 2,
    "exported": 2,
    "renamed": 3,
    "updated": 3,
    "changed": 3,
    "configured": 3,
    "verified": 3,
    "deleted": 4,
    "removed": 4,
    "purged": 4,
    "erased": 4,
}


def _is_sign_in(event: EventRecord) -> bool:
    return event.category == "sign_in" or ".sign_in" in event.action


def _user(kind: str, uid: str, name: str | None, email: str | None) -> dict[str, Any]:
    user: dict[str, Any] = {"uid": uid, "type": kind}
    if name:
        user["name"] = name
    if email:
        user["email_addr"] = email
    return user


def ocsf_record(
    event: EventRecord, data: Sequence[PersonalDatum], *, vendor: str = "nulabpass"
) -> dict[str, Any]:
    """The OCSF record of ``event`` (see the module's mapping)."""
    values = _values(data)
    actor = _user(
        event.actor_type,
        event.actor_id,
        values.get("actor.name") or event.context.get("actor_display"),
        values.get("actor.email"),
    )
    first = event.targets[0] if event.targets else None
    target_user = (
        _user(first.type, first.id, values.get("target.0.name"), values.get("target.0.email"))
        if first is not None
        else actor
    )
    record: dict[str, Any]
    if _is_sign_in(event):
        class_uid, activity_id = 3002, 1
        record = {"user": target_user if first is not None else actor}
    elif event.action in _ACCOUNT_CHANGES:
        class_uid, activity_id = 3001, _ACCOUNT_CHANGES[event.action]
        record = {"user": target_user}
    else:
        class_uid = 3004
        verb = event.action.rsplit(".", 1)[-1].rsplit("_", 1)[-1]
        activity_id = _VERBS.get(verb, 99)
        entity = (
            {"uid": first.id, "type": first.type}
            if first is not None
            else {"uid": event.scope, "type": "organization"}
        )
        record = {"entity": entity}
    failed = event.outcome is Outcome.FAILURE
    record.update(
        {
            "activity_id": activity_id,
            "category_uid": 3,
            "class_uid": class_uid,
            "class_name": OCSF_CLASSES[class_uid]["name"],
            "type_uid": class_uid * 100 + activity_id,
            "severity_id": 1,
            "status_id": 2 if failed else 1,
            "status": "Failure" if failed else "Success",
            "time": int(event.occurred_at.timestamp() * 1000),
            "actor": {"user": actor},
            "metadata": {
                "version": OCSF_VERSION,
                "uid": event.id,
                "product": {
                    "name": event.context.get("product") or "nulabpass",
                    "vendor_name": vendor,
                },
                "log_name": f"audit:{event.scope}",
                "sequence": event.seq,
            },
            "unmapped": {
                "action": event.action,
                "category": event.category,
                "metadata": dict(event.metadata),
                "hash": event.hash,
            },
        }
    )
    if activity_id == 99:
        record["activity_name"] = event.action
    if values.get("context.ip"):
        record["src_endpoint"] = {"ip": values["context.ip"]}
    if values.get("context.user_agent"):
        record["http_request"] = {"user_agent": values["context.user_agent"]}
    if failed and "error_code" in event.metadata:
        record["status_detail"] = str(event.metadata["error_code"])
    return record


def validate_ocsf(record: Mapping[str, Any]) -> None:
    """Check ``record`` against the class definitions above; raise ``ValueError``."""
    for name, kind in _BASE_REQUIRED.items():
        value = record.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"OCSF attribute {name!r} is missing or not {kind}")
    class_uid = record["class_uid"]
    definition = OCSF_CLASSES.get(class_uid)
    if definition is None:
        raise ValueError(f"OCSF class {class_uid} is not one this export emits")
    if record["category_uid"] != definition["category_uid"]:
        raise ValueError(f"class {class_uid} belongs to category {definition['category_uid']}")
    if record["activity_id"] not in definition["activities"]:
        raise ValueError(f"activity {record['activity_id']} is not defined for {class_uid}")
    if record["type_uid"] != class_uid * 100 + record["activity_id"]:
        raise ValueError("type_uid must be class_uid * 100 + activity_id")
    if record["status_id"] not in (0, 1, 2, 99) or record["severity_id"] not in range(7):
        raise ValueError("status_id or severity_id is out of range")
    for name, kind in definition["required"].items():
        if not isinstance(record.get(name), kind):
            raise ValueError(f"OCSF class {class_uid} requires {name!r} as {kind}")
    meta = record["metadata"]
    if not isinstance(meta.get("version"), str) or not isinstance(meta.get("product"), dict):
        raise ValueError("metadata needs version and product")
    if record["activity_id"] == 99 and not isinstance(record.get("activity_name"), str):
        raise ValueError("activity Other (99) needs activity_name")


def ocsf_line(event: EventRecord, data: Sequence[PersonalDatum]) -> str:
    """One OCSF record as a JSON line, checked against its class."""
    record = ocsf_record(event, data)
    validate_ocsf(record)
    return _dump(record)
