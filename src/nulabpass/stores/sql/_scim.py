"""SCIM provisioning state in the SQL store, and the compiler of SCIM queries.

Theory of operation: :func:`_compile` turns a canonical filter into one SQL boolean
expression over the organization's SCIM user rows (or its teams joined with their SCIM
rows). A user row exists only for an account the organization manages (a foreign key
guarantees it), so user lists read the SCIM table alone and join the accounts only for
a filter on ``active``. Every leaf is null-safe (a missing value
makes a comparison false, never NULL), so ``not`` means what it means in the memory
store. Multi-valued attributes become ``EXISTS`` sub-queries on their own tables
(``emails`` on ``nulabpass_scim_emails``, ``members`` on ``nulabpass_team_members``).
``userName`` and email values are compared on case-folded key columns under indexes;
sorting and paging run in the database (``ORDER BY ... LIMIT ... OFFSET``); sorted by
``userName``, the count and the page read only the index on ``(org_id, user_name_key,
account_id)``, in the code point order of its columns. An attribute
the compiler has no column for raises ``invalidFilter``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    not_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from nulabpass.errors import Conflict, NotFound, StaleWrite
from nulabpass.org._model import Account, AccountStatus, Domain, Organization, Team
from nulabpass.scim._errors import account_not_managed, invalid_filter
from nulabpass.scim._evaluate import parse_time
from nulabpass.scim._filter import And, AttrPath, Compare, Filter, Not, Or, Present, ValuePath
from nulabpass.scim._model import (
    ScimAddress,
    ScimEmail,
    ScimGroupRow,
    ScimProfile,
    ScimToken,
    ScimTombstone,
    ScimUserRow,
    ScimValue,
)
from nulabpass.scim._query import ScimPage, ScimQuery
from nulabpass.scim._schema import ENTERPRISE_USER
from nulabpass.stores.sql import schema as s
from nulabpass.stores.sql._repositories import (
    _ACCOUNT_NAMES,
    _account,
    _account_at,
    _domain_from,
    _org_from,
    _plan_from,
    _team,
    _team_at,
)

if TYPE_CHECKING:
    from nulabpass.ports import StoredPlan
    from nulabpass.stores.sql._repositories import Db

__all__ = ["SqlScimRepository"]

u = s.scim_users
a = s.accounts
e = s.scim_emails
#: The SCIM user columns labelled apart from the account columns they are joined with.
_USER_LABELLED = tuple(c.label(f"scim_{c.name}") for c in u.columns)
t = s.teams
g = s.scim_groups
tm = s.team_members
#: Names of the SCIM user columns, in the order they follow the account's in a row.
_USER_NAMES = tuple(c.name for c in u.columns)
_ACCOUNT_WIDTH = len(a.columns)
#: A page of users and their emails, built once: the ids travel as an expanding
#: parameter, so SQLAlchemy neither rebuilds nor re-keys the statements per page.
_LOAD_USERS = (
    select(a, *_USER_LABELLED)
    .select_from(a.join(u, u.c.account_id == a.c.id))
    .where(
        a.c.id.in_(bindparam("ids", expanding=True)),
        a.c.managed_by == bindparam("org"),
        u.c.org_id == bindparam("org"),
    )
)
#: The teams of one account (``groups_of``) and of a page of accounts (``groups_by_account``).
_GROUPS_OF = (
    select(t)
    .select_from(t.join(tm, tm.c.team_id == t.c.id))
    .where(t.c.org_id == bindparam("org"), tm.c.account_id == bindparam("account"))
    .order_by(t.c.name_key, t.c.id)
)
_GROUPS_BY_ACCOUNT = (
    select(t, tm.c.account_id.label("member_id"))
    .select_from(t.join(tm, tm.c.team_id == t.c.id))
    .where(t.c.org_id == bindparam("org"), tm.c.account_id.in_(bindparam("ids", expanding=True)))
    .order_by(t.c.name_key, t.c.id)
)
_TOKEN = select(s.scim_tokens).where(s.scim_tokens.c.id == bindparam("id"))
#: The organization, its plan and its domains in one statement (``provisioning_facts``,
#: and after a token in ``token_and_facts``): one row per domain (one row with empty
#: domain columns when it has none), each table's columns labelled apart and read back by
#: position; per dialect (the domain order) and per key (organization id or token id).
_TOKEN_NAMES = tuple(c.name for c in s.scim_tokens.columns)
_ORG_NAMES = tuple(c.name for c in s.organizations.columns)
_PLAN_NAMES = tuple(c.name for c in s.plans.columns)
_DOMAIN_NAMES = tuple(c.name for c in s.domains.columns)
#: Offsets of a column that is never null in a stored row: null means no row joined.
_ORG_KEY = _ORG_NAMES.index("id")
_PLAN_KEY = _PLAN_NAMES.index("org_id")
_DOMAIN_KEY = _DOMAIN_NAMES.index("id")


def _facts_statement(*, postgres: bool, by_token: bool) -> Select[Any]:
    o, p, d, tk = s.organizations, s.plans, s.domains, s.scim_tokens
    tables = ((("t", tk),) if by_token else ()) + (("o", o), ("p", p), ("d", d))
    org_id = tk.c.org_id if by_token else o.c.id
    joined = tk.outerjoin(o, o.c.id == tk.c.org_id) if by_token else o
    return (
        select(
            *(
                column.label(f"{prefix}_{column.name}")
                for prefix, table in tables
                for column in table.columns
            )
        )
        .select_from(joined.outerjoin(p, p.c.org_id == org_id).outerjoin(d, d.c.org_id == org_id))
        .where((tk.c.id if by_token else o.c.id) == bindparam("key"))
        .order_by(d.c.name.collate("C") if postgres else d.c.name)
    )


_FACTS = {
    (postgres, by_token): _facts_statement(postgres=postgres, by_token=by_token)
    for postgres in (False, True)
    for by_token in (False, True)
}


def _facts(
    rows: Sequence[Any], offset: int
) -> tuple[Organization | None, list[Domain], StoredPlan | None]:
    """The facts in ``rows`` from column ``offset`` on (after a token's columns)."""
    if not rows or rows[0][offset + _ORG_KEY] is None:
        return None, [], None
    first = rows[0]
    p_at = offset + len(_ORG_NAMES)
    d_at = p_at + len(_PLAN_NAMES)
    org = _org_from(dict(zip(_ORG_NAMES, first[offset:p_at], strict=True)))
    plan = (
        _plan_from(dict(zip(_PLAN_NAMES, first[p_at:d_at], strict=True)))
        if first[p_at + _PLAN_KEY] is not None
        else None
    )
    domains = [
        _domain_from(dict(zip(_DOMAIN_NAMES, r[d_at:], strict=True)))
        for r in rows
        if r[d_at + _DOMAIN_KEY] is not None
    ]
    return org, domains, plan


#: The versioned write of a user's row; the new values travel as parameters named after
#: their columns (SQLAlchemy's SET clause), so the statement is built once.
_UPDATE_USER = update(u).where(
    u.c.org_id == bindparam("key_org"),
    u.c.account_id == bindparam("key_account"),
    u.c.version == bindparam("key_version"),
)
uc = s.scim_user_counts
_USER_COUNT = select(uc.c.users).where(uc.c.org_id == bindparam("org"))
_UNCOUNT_USER = update(uc).where(uc.c.org_id == bindparam("org")).values(users=uc.c.users - 1)
#: One more user in the organization's count, the row created with the first user.
_COUNT_USER = {
    is_postgres: (postgresql.insert(uc) if is_postgres else sqlite.insert(uc))
    .values(org_id=bindparam("org"), users=1)
    .on_conflict_do_update(index_elements=[uc.c.org_id], set_={"users": uc.c.users + 1})
    for is_postgres in (True, False)
}
_LOAD_EMAILS = (
    select(e.c.account_id, e.c.value, e.c.type, e.c.is_primary, e.c.display)
    .where(e.c.org_id == bindparam("org"), e.c.account_id.in_(bindparam("ids", expanding=True)))
    .order_by(e.c.account_id, e.c.position)
)
#: One user with its emails in one statement (a GET by id, a write's read): one row per
#: email, or one with empty email columns when there is none.
_LOAD_USER = (
    select(a, *_USER_LABELLED, e.c.value, e.c.type, e.c.is_primary, e.c.display)
    # Every table is keyed by the bound values themselves, so each is one index probe
    # (on PostgreSQL the SCIM tables' account_id has its own collation, and a join on it
    # alone cannot use their indexes).
    .select_from(
        a.join(
            u,
            and_(u.c.org_id == bindparam("org"), u.c.account_id == bindparam("id")),
        ).outerjoin(e, and_(e.c.org_id == bindparam("org"), e.c.account_id == bindparam("id")))
    )
    .where(a.c.id == bindparam("id"), a.c.managed_by == bindparam("org"))
    .order_by(e.c.position)
)
_USER_END = _ACCOUNT_WIDTH + len(_USER_NAMES)
#: Which of some accounts (one, or an expanding list) the organization manages.
_MANAGED_ONE = select(a.c.id).where(a.c.id == bindparam("id"), a.c.managed_by == bindparam("org"))
_MANAGED = select(a.c.id).where(
    a.c.id.in_(bindparam("ids", expanding=True)), a.c.managed_by == bindparam("org")
)
#: A user's emails (rewritten whole when they change) and its row, keyed by bound values.
_DELETE_EMAILS = delete(e).where(e.c.org_id == bindparam("org"), e.c.account_id == bindparam("id"))
_INSERT_EMAILS = insert(e)
_DELETE_USER = delete(u).where(u.c.org_id == bindparam("org"), u.c.account_id == bindparam("id"))

#: Below this many matches, an unsorted page is ordered in Python (see query_users).
_SMALL = 1000
#: Unsorted queries first fetch up to this many ids (plus one) without counting: when
#: fewer match (``userName eq``, ``externalId eq``), that one query gives page and total.
_PROBE = 50
#: ``filter=userName eq "..."``, what identity providers send before every create: its
#: statement is built once (a compiled filter costs more than the query).
_BY_USER_NAME = (
    select(u.c.account_id)
    .where(
        u.c.org_id == bindparam("org"),
        u.c.user_name_key.is_not(None),
        u.c.user_name_key == bindparam("key"),
    )
    .limit(_PROBE + 1)
)

#: Multi-valued attributes stored as JSON lists on the user's row, and their value type.
_JSON_VALUES: dict[str, type[ScimValue] | type[ScimAddress]] = {
    "phone_numbers": ScimValue,
    "ims": ScimValue,
    "photos": ScimValue,
    "addresses": ScimAddress,
    "entitlements": ScimValue,
    "roles": ScimValue,
    "x509_certificates": ScimValue,
}
_PROFILE_COLUMNS = [
    f.name for f in attrs.fields(ScimProfile) if f.name != "emails" and f.name not in _JSON_VALUES
]


@attrs.frozen(slots=True)
class _Field:
    """How one attribute maps to SQL: its column, its kind and how values are folded."""

    column: Any
    kind: str  # "string", "key" (case-folded column), "exact", "time", "active", "bool"


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Compiler:
    def __init__(
        self,
        db: Db,
        fields: Mapping[tuple[str | None, str, str | None], _Field],
        multi: Mapping[str, Callable[[Filter, _Compiler], ColumnElement[bool]]],
    ) -> None:
        self.db = db
        self.fields = fields
        self.multi = multi
        #: Whether a compiled filter or sort named a column of the accounts.
        self.uses_accounts = False

    def field(self, path: AttrPath) -> _Field:
        key = (path.urn, path.attr, path.sub)
        found = self.fields.get(key)
        if found is None:
            raise invalid_filter(f"The attribute {path.text()} cannot be used in a filter.")
        if getattr(found.column, "table", None) is a:
            self.uses_accounts = True
        return found

    def compile(self, node: Filter) -> ColumnElement[bool]:
        if isinstance(node, And):
            return and_(self.compile(node.left), self.compile(node.right))
        if isinstance(node, Or):
            return or_(self.compile(node.left), self.compile(node.right))
        if isinstance(node, Not):
            return not_(self.compile(node.inner))
        if isinstance(node, ValuePath):
            build = self.multi.get(node.path.attr)
            if build is None or node.path.urn is not None:
                raise invalid_filter(f"The attribute {node.path.text()} cannot be filtered.")
            return build(node.filter, self)
        f = self.field(node.path)
        if isinstance(node, Present):
            return self.present(f)
        return self.compare(f, node.op, node.value)

    def present(self, f: _Field) -> ColumnElement[bool]:
        if f.kind in {"active", "bool", "time"}:
            return f.column.is_not(None) if f.kind != "active" else true()
        return and_(f.column.is_not(None), f.column != "")

    def compare(self, f: _Field, op: str, value: object) -> ColumnElement[bool]:
        col: ColumnElement[Any] = f.column
        if f.kind == "active":
            if value is None:
                return false() if op == "eq" else true()
            active: ColumnElement[bool] = col != AccountStatus.DEACTIVATED.value
            return active if (value is True) == (op == "eq") else not_(active)
        if value is None:
            return col.is_(None) if op == "eq" else col.is_not(None)
        if f.kind == "bool":
            if not isinstance(value, bool):
                return false()
            cond = col == value
            return and_(col.is_not(None), cond if op == "eq" else not_(cond))
        if f.kind == "time":
            when = parse_time(value) if isinstance(value, str) else None
            if when is None:
                return false()
            return self._ordered(col, op, when, present=col.is_not(None))
        if not isinstance(value, str):
            return false()
        expr: Any = col
        target = value
        if f.kind == "string":
            expr = func.lower(col)
            target = value.lower()
            if op in {"eq", "ne"} and not self.db.is_postgres:
                # SQLite's lower() folds the ASCII letters only, as its NOCASE collation
                # does, and the target has no upper-case letter left: the same test,
                # without building a lowered copy of every row's value.
                expr = col.collate("NOCASE")
        elif f.kind == "key":
            target = value.casefold()
        present = col.is_not(None)
        if op == "eq":
            return and_(present, expr == target)
        if op == "ne":
            return or_(col.is_(None), expr != target)
        if op == "co":
            return and_(present, expr.like(f"%{_like(target)}%", escape="\\"))
        if op == "sw":
            return and_(present, expr.like(f"{_like(target)}%", escape="\\"))
        if op == "ew":
            return and_(present, expr.like(f"%{_like(target)}", escape="\\"))
        return self._ordered(self.db.ordered(expr), op, target, present=present)

    @staticmethod
    def _ordered(expr: Any, op: str, target: object, *, present: Any) -> ColumnElement[bool]:
        if op == "eq":
            return and_(present, expr == target)
        if op == "ne":
            return or_(not_(present), expr != target)
        if op == "gt":
            return and_(present, expr > target)
        if op == "ge":
            return and_(present, expr >= target)
        if op == "lt":
            return and_(present, expr < target)
        return and_(present, expr <= target)


def _user_fields() -> dict[tuple[str | None, str, str | None], _Field]:
    fields: dict[tuple[str | None, str, str | None], _Field] = {
        (None, "id", None): _Field(u.c.account_id, "exact"),
        (None, "externalId", None): _Field(u.c.external_id, "exact"),
        (None, "userName", None): _Field(u.c.user_name_key, "key"),
        (None, "displayName", None): _Field(u.c.display_name, "string"),
        (None, "nickName", None): _Field(u.c.nick_name, "string"),
        (None, "profileUrl", None): _Field(u.c.profile_url, "string"),
        (None, "title", None): _Field(u.c.title, "string"),
        (None, "userType", None): _Field(u.c.user_type, "string"),
        (None, "locale", None): _Field(u.c.locale, "string"),
        (None, "preferredLanguage", None): _Field(u.c.preferred_language, "string"),
        (None, "timezone", None): _Field(u.c.timezone, "string"),
        (None, "active", None): _Field(a.c.status, "active"),
        (None, "meta", "created"): _Field(u.c.created_at, "time"),
        (None, "meta", "lastModified"): _Field(u.c.updated_at, "time"),
        (ENTERPRISE_USER, "manager", "value"): _Field(u.c.manager_id, "exact"),
    }
    for sub, column in (
        ("formatted", u.c.formatted),
        ("familyName", u.c.family_name),
        ("givenName", u.c.given_name),
        ("middleName", u.c.middle_name),
        ("honorificPrefix", u.c.honorific_prefix),
        ("honorificSuffix", u.c.honorific_suffix),
    ):
        fields[(None, "name", sub)] = _Field(column, "string")
    for attr, column in (
        ("employeeNumber", u.c.employee_number),
        ("costCenter", u.c.cost_center),
        ("organization", u.c.organization),
        ("division", u.c.division),
        ("department", u.c.department),
    ):
        fields[(ENTERPRISE_USER, attr, None)] = _Field(column, "string")
    return fields


_USER_FIELDS = _user_fields()
_EMAIL_FIELDS: dict[tuple[str | None, str, str | None], _Field] = {
    (None, "value", None): _Field(e.c.value_key, "key"),
    (None, "type", None): _Field(e.c.type, "string"),
    (None, "primary", None): _Field(e.c.is_primary, "bool"),
    (None, "display", None): _Field(e.c.display, "string"),
}
_GROUP_FIELDS: dict[tuple[str | None, str, str | None], _Field] = {
    (None, "id", None): _Field(t.c.id, "exact"),
    (None, "externalId", None): _Field(g.c.external_id, "exact"),
    (None, "displayName", None): _Field(t.c.name_key, "key"),
    (None, "meta", "created"): _Field(t.c.created_at, "time"),
    (None, "meta", "lastModified"): _Field(t.c.updated_at, "time"),
}


def _row_profile(m: Mapping[str, Any], emails: tuple[ScimEmail, ...]) -> ScimProfile:
    values: dict[str, Any] = {name: m[name] for name in _PROFILE_COLUMNS}
    for name, kind in _JSON_VALUES.items():
        values[name] = tuple(kind(**item) for item in m[name] or ())
    return ScimProfile(emails=emails, **values)


class SqlScimRepository:
    """SCIM state (:class:`~nulabpass.ports.ScimRepository`) of the SQL store."""

    def __init__(self, db: Db) -> None:
        self._db = db

    # -- users -----------------------------------------------------------------------

    def _emails(self, org_id: str, account_id: str) -> tuple[ScimEmail, ...]:
        rows = self._db.all(
            select(e)
            .where(e.c.org_id == org_id, e.c.account_id == account_id)
            .order_by(e.c.position),
            "scim",
        )
        return tuple(
            ScimEmail(
                r._mapping["value"],
                r._mapping["type"],
                r._mapping["is_primary"],
                r._mapping["display"],
            )
            for r in rows
        )

    def _write_emails(self, row: ScimUserRow, *, fresh: bool = False) -> None:
        if not fresh:
            self._db.write(_DELETE_EMAILS, "scim", [{"org": row.org_id, "id": row.account_id}])
        if row.profile.emails:
            self._db.write(
                _INSERT_EMAILS,
                "scim",
                [
                    {
                        "org_id": row.org_id,
                        "account_id": row.account_id,
                        "position": i,
                        "value": em.value,
                        "value_key": em.value.casefold(),
                        "type": em.type,
                        "is_primary": em.primary,
                        "display": em.display,
                    }
                    for i, em in enumerate(row.profile.emails)
                ],
            )

    @staticmethod
    def _values(row: ScimUserRow) -> dict[str, Any]:
        values: dict[str, Any] = {name: getattr(row.profile, name) for name in _PROFILE_COLUMNS}
        for name in _JSON_VALUES:
            items = getattr(row.profile, name)
            values[name] = [attrs.asdict(i) for i in items] if items else None
        values.update(
            org_id=row.org_id,
            account_id=row.account_id,
            user_name_key=row.profile.user_name.casefold(),
            created_at=row.created_at,
            updated_at=row.updated_at,
            version=row.version,
        )
        return values

    def get_user(self, org_id: str, account_id: str) -> ScimUserRow | None:
        found = self._db.first(
            select(u).where(u.c.org_id == org_id, u.c.account_id == account_id), "scim"
        )
        if found is None:
            return None
        m = found._mapping
        return ScimUserRow(
            org_id=m["org_id"],
            account_id=m["account_id"],
            profile=_row_profile(dict(m), self._emails(org_id, account_id)),
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            version=m["version"],
        )

    def add_user(self, row: ScimUserRow) -> None:
        refused = account_not_managed(row.org_id, row.account_id)
        if not self._db.insert_ignore(u, self._values(row), "scim", on_foreign_key=refused):
            raise Conflict("The account already has SCIM attributes.", code="scim.user_exists")
        self._db.write(_COUNT_USER[self._db.is_postgres], "scim", [{"org": row.org_id}])
        # Emails belong to their user row (deleted with it), so a new row has none yet.
        self._write_emails(row, fresh=True)

    def update_user(self, row: ScimUserRow, *, emails_changed: bool = True) -> ScimUserRow:
        values = self._values(row)
        key = (row.org_id, row.account_id)
        params = self._db.changed(
            u,
            key,
            row.version,
            {k: v for k, v in values.items() if k not in {"org_id", "account_id"}},
        )
        params.update(
            version=row.version + 1,
            key_org=row.org_id,
            key_account=row.account_id,
            key_version=row.version,
        )
        if self._db.write(_UPDATE_USER, "scim", [params]) != 1:
            if self.get_user(row.org_id, row.account_id) is None:
                raise NotFound(
                    f"The user {row.account_id} no longer exists.", code="scim.not_found"
                )
            raise StaleWrite(
                f"The user {row.account_id} was changed by another request; reload it."
            )
        self._db.remember(u, key, {**values, "version": row.version + 1})
        if emails_changed:
            self._write_emails(row)
        return attrs.evolve(row, version=row.version + 1)

    def delete_user(self, org_id: str, account_id: str) -> None:
        key = [{"org": org_id, "id": account_id}]
        self._db.write(_DELETE_EMAILS, "scim", key)
        if self._db.write(_DELETE_USER, "scim", key):
            self._db.write(_UNCOUNT_USER, "scim", [{"org": org_id}])

    def _email_exists(self, org_id: str) -> Callable[[Filter, _Compiler], ColumnElement[bool]]:
        def build(inner: Filter, outer: _Compiler) -> ColumnElement[bool]:
            sub = _Compiler(outer.db, _EMAIL_FIELDS, {})
            return exists(
                select(e.c.position).where(
                    e.c.org_id == org_id, e.c.account_id == u.c.account_id, sub.compile(inner)
                )
            )

        return build

    def query_users(self, query: ScimQuery) -> ScimPage:
        org = query.org_id
        start = max(query.start_index, 1) - 1
        wanted = query.filter
        if (
            query.sort_by is None
            and query.count > 0
            and isinstance(wanted, Compare)
            and wanted.op == "eq"
            and isinstance(wanted.value, str)
            and (wanted.path.urn, wanted.path.attr, wanted.path.sub) == (None, "userName", None)
        ):
            found = self._db.fetch(_BY_USER_NAME, "scim", org=org, key=wanted.value.casefold())
            if len(found) <= _PROBE:
                ids = sorted(r[0] for r in found)
                return ScimPage(len(ids), tuple(ids[start : start + query.count]))
        compiler = _Compiler(self._db, _USER_FIELDS, {"emails": self._email_exists(org)})
        where: list[ColumnElement[bool]] = [u.c.org_id == org]
        if query.filter is not None:
            where.append(compiler.compile(query.filter))
        order = self._order(compiler, query)
        # Every row names an account the organization manages (the foreign key), so the
        # accounts are joined only when the filter or the sort reads one of their columns.
        joined = u.join(a, a.c.id == u.c.account_id) if compiler.uses_accounts else u
        if query.sort_by is None and query.count > 0:
            probe = self._db.all(
                select(u.c.account_id).select_from(joined).where(*where).limit(_PROBE + 1),
                "scim",
            )
            if len(probe) <= _PROBE:
                ids = sorted(r._mapping["account_id"] for r in probe)
                return ScimPage(len(ids), tuple(ids[start : start + query.count]))
        if query.filter is None:
            # Counting the rows grows with the organization; its count is kept instead.
            found_total = self._db.fetch(_USER_COUNT, "scim", org=org)
            total = int(found_total[0][0]) if found_total else 0
        else:
            count = select(func.count()).select_from(joined).where(*where)
            total = self._db.scalar_int(count, "scim")
        if query.count <= 0 or total == 0:
            return ScimPage(total, ())
        if query.sort_by is None and total <= _SMALL:
            # Few matches (userName eq, externalId eq): fetch them with the plan the
            # count used and order them here, rather than let the planner pick a scan
            # in id order to avoid a sort.
            found = self._db.all(select(u.c.account_id).select_from(joined).where(*where), "scim")
            ids = sorted(r._mapping["account_id"] for r in found)
            return ScimPage(total, tuple(ids[start : start + query.count]))
        order.append(self._db.ordered(u.c.account_id))
        rows = self._db.all(
            select(u.c.account_id)
            .select_from(joined)
            .where(*where)
            .order_by(*order)
            .limit(query.count)
            .offset(max(query.start_index, 1) - 1),
            "scim",
        )
        return ScimPage(total, tuple(r._mapping["account_id"] for r in rows))

    def load_users(
        self, org_id: str, account_ids: Sequence[str]
    ) -> list[tuple[Account, ScimUserRow]]:
        ids = list(dict.fromkeys(account_ids))
        if len(ids) == 1:
            return self._load_user(org_id, ids[0])
        accounts: dict[str, Account] = {}
        rows: dict[str, Mapping[str, Any]] = {}
        emails: dict[str, list[ScimEmail]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            params = [{"ids": chunk, "org": org_id}]
            for r in self._db.execute(_LOAD_USERS, "scim", params=params).all():
                loaded = _account(r)
                accounts[loaded.id] = loaded
                rows[loaded.id] = dict(zip(_USER_NAMES, r[_ACCOUNT_WIDTH:], strict=True))
            for owner, value, type_, primary, display in self._db.execute(
                _LOAD_EMAILS, "scim", params=params
            ).all():
                emails.setdefault(owner, []).append(ScimEmail(value, type_, primary, display))
        out: list[tuple[Account, ScimUserRow]] = []
        for account_id in ids:
            account = accounts.get(account_id)
            values = rows.get(account_id)
            if account is None or values is None:
                continue
            row = ScimUserRow(
                org_id=org_id,
                account_id=account_id,
                profile=_row_profile(values, tuple(emails.get(account_id, ()))),
                created_at=values["created_at"],
                updated_at=values["updated_at"],
                version=values["version"],
            )
            out.append((account, row))
        return out

    def _load_user(self, org_id: str, account_id: str) -> list[tuple[Account, ScimUserRow]]:
        found = self._db.fetch(_LOAD_USER, "scim", id=account_id, org=org_id)
        if not found:
            return []
        first = found[0]
        values = dict(zip(_USER_NAMES, first[_ACCOUNT_WIDTH:_USER_END], strict=True))
        self._db.remember(a, (account_id,), dict(zip(_ACCOUNT_NAMES, first, strict=False)))
        self._db.remember(u, (org_id, account_id), values)
        emails = tuple(ScimEmail(*r[_USER_END:]) for r in found if r[_USER_END] is not None)
        row = ScimUserRow(
            org_id=org_id,
            account_id=account_id,
            profile=_row_profile(values, emails),
            created_at=values["created_at"],
            updated_at=values["updated_at"],
            version=values["version"],
        )
        return [(_account_at(first), row)]

    def groups_by_account(self, org_id: str, account_ids: Sequence[str]) -> dict[str, list[Team]]:
        out: dict[str, list[Team]] = {a: [] for a in account_ids}
        ids = list(out)
        if len(ids) == 1:
            rows = self._db.fetch(_GROUPS_OF, "scim", org=org_id, account=ids[0])
            out[ids[0]].extend(_team_at(r) for r in rows)
            return out
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            params = [{"org": org_id, "ids": chunk}]
            for r in self._db.execute(_GROUPS_BY_ACCOUNT, "scim", params=params).all():
                out[r._mapping["member_id"]].append(_team(r))
        return out

    def provisioning_facts(
        self, org_id: str
    ) -> tuple[Organization | None, list[Domain], StoredPlan | None]:
        stmt = _FACTS[self._db.is_postgres, False]
        return _facts(self._db.fetch(stmt, "organization", key=org_id), 0)

    def token_and_facts(
        self, token_id: str
    ) -> tuple[ScimToken, tuple[Organization | None, list[Domain], StoredPlan | None]] | None:
        stmt = _FACTS[self._db.is_postgres, True]
        rows = self._db.fetch(stmt, "scim", key=token_id)
        if not rows:
            return None
        width = len(_TOKEN_NAMES)
        token = ScimToken(**dict(zip(_TOKEN_NAMES, rows[0][:width], strict=True)))
        return token, _facts(rows, width)

    def _order(self, compiler: _Compiler, query: ScimQuery) -> list[Any]:
        if query.sort_by is None:
            return []
        f = compiler.field(query.sort_by)
        col = f.column
        if f.kind == "string":
            col = func.lower(col)
        if f.kind in {"string", "key", "exact"}:
            col = self._db.ordered(col)
        order: list[Any] = []
        if getattr(f.column, "nullable", True) and f.kind != "active":
            # Values missing sort last in both directions, as in the memory store.
            order.append(f.column.is_(None))
        order.append(col.desc() if query.descending else col.asc())
        return order

    def add_tombstone(self, tombstone: ScimTombstone) -> None:
        self._db.execute(
            delete(s.scim_tombstones).where(
                s.scim_tombstones.c.org_id == tombstone.org_id,
                s.scim_tombstones.c.account_id == tombstone.account_id,
            ),
            "scim",
        )
        self._db.execute(insert(s.scim_tombstones).values(attrs.asdict(tombstone)), "scim")

    def get_tombstone(self, org_id: str, account_id: str) -> ScimTombstone | None:
        found = self._db.first(
            select(s.scim_tombstones).where(
                s.scim_tombstones.c.org_id == org_id, s.scim_tombstones.c.account_id == account_id
            ),
            "scim",
        )
        return None if found is None else ScimTombstone(**dict(found._mapping))

    # -- groups ----------------------------------------------------------------------

    def get_group(self, team_id: str) -> ScimGroupRow | None:
        found = self._db.first(select(g).where(g.c.team_id == team_id), "scim")
        return None if found is None else ScimGroupRow(**dict(found._mapping))

    def put_group(self, row: ScimGroupRow) -> None:
        self.delete_group(row.team_id)
        self._db.execute(insert(g).values(attrs.asdict(row)), "scim")

    def delete_group(self, team_id: str) -> None:
        self._db.execute(delete(g).where(g.c.team_id == team_id), "scim")

    def query_groups(self, query: ScimQuery) -> ScimPage:
        org = query.org_id
        ma = a.alias("ma")

        def members(inner: Filter, outer: _Compiler) -> ColumnElement[bool]:
            sub = _Compiler(
                outer.db, {(None, "value", None): _Field(tm.c.account_id, "exact")}, {}
            )
            return exists(
                select(tm.c.account_id)
                .select_from(tm.join(ma, ma.c.id == tm.c.account_id))
                .where(tm.c.team_id == t.c.id, ma.c.managed_by == org, sub.compile(inner))
            )

        compiler = _Compiler(self._db, _GROUP_FIELDS, {"members": members})
        where: list[ColumnElement[bool]] = [t.c.org_id == org]
        if query.filter is not None:
            where.append(compiler.compile(query.filter))
        joined = t.outerjoin(g, g.c.team_id == t.c.id)
        total = self._db.scalar_int(select(func.count()).select_from(joined).where(*where), "scim")
        order = self._order(compiler, query)
        order.append(self._db.ordered(t.c.id))
        if query.count <= 0 or total == 0:
            return ScimPage(total, ())
        rows = self._db.all(
            select(t.c.id)
            .select_from(joined)
            .where(*where)
            .order_by(*order)
            .limit(query.count)
            .offset(max(query.start_index, 1) - 1),
            "scim",
        )
        return ScimPage(total, tuple(r._mapping["id"] for r in rows))

    def groups_of(self, org_id: str, account_id: str) -> list[Team]:
        rows = self._db.fetch(_GROUPS_OF, "scim", org=org_id, account=account_id)
        return [_team_at(r) for r in rows]

    def managed_members(self, org_id: str, team_id: str) -> list[Account]:
        rows = self._db.all(
            select(a)
            .select_from(tm.join(a, a.c.id == tm.c.account_id))
            .where(tm.c.team_id == team_id, a.c.managed_by == org_id)
            .order_by(self._db.ordered(a.c.id)),
            "scim",
        )
        return [_account(r) for r in rows]

    def managed_ids(self, org_id: str, account_ids: Sequence[str]) -> set[str]:
        ids = list(dict.fromkeys(account_ids))
        if len(ids) == 1:
            return {r[0] for r in self._db.fetch(_MANAGED_ONE, "scim", id=ids[0], org=org_id)}
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self._db.execute(_MANAGED, "scim", params=[{"ids": chunk, "org": org_id}])
            found.update(r[0] for r in rows)
        return found

    # -- tokens ----------------------------------------------------------------------

    def add_token(self, token: ScimToken) -> None:
        if not self._db.insert_ignore(s.scim_tokens, attrs.asdict(token), "scim"):
            raise Conflict(f"SCIM token {token.id} already exists.", code="scim.token_exists")

    def get_token(self, token_id: str) -> ScimToken | None:
        found = self._db.row(_TOKEN, "scim", id=token_id)
        return None if found is None else ScimToken(**dict(found._mapping))

    def list_tokens(self, org_id: str) -> list[ScimToken]:
        rows = self._db.all(
            select(s.scim_tokens)
            .where(s.scim_tokens.c.org_id == org_id)
            .order_by(s.scim_tokens.c.created_at, s.scim_tokens.c.id),
            "scim",
        )
        return [ScimToken(**dict(r._mapping)) for r in rows]

    def update_token(self, token: ScimToken) -> ScimToken:
        # last_used_at is written only by record_token_use, so that revoking a token
        # never rewinds it to the value read earlier.
        values = attrs.asdict(token)
        del values["last_used_at"]
        self._db.update_versioned(
            s.scim_tokens, {"id": token.id}, token.version, values, "scim_token"
        )
        return attrs.evolve(token, version=token.version + 1)

    def record_token_use(self, token_id: str, at: datetime, *, stale_before: datetime) -> bool:
        st = s.scim_tokens
        stmt = (
            update(st)
            .where(
                st.c.id == token_id,
                or_(st.c.last_used_at.is_(None), st.c.last_used_at <= stale_before),
            )
            .values(last_used_at=at)
        )
        return bool(self._db.execute(stmt, "scim").rowcount == 1)
