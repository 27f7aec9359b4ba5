"""SCIM provisioning state in the memory store.

Queries evaluate the canonical filter over the organization's own rows only (an index
by organization), on the same documents the service renders, so the memory store and the
SQL store answer every query alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from nulabpass.errors import Conflict, NotFound, StaleWrite
from nulabpass.org._model import Account, Domain, Organization, Team
from nulabpass.scim._errors import account_not_managed
from nulabpass.scim._evaluate import matches
from nulabpass.scim._filter import AttrPath, Filter
from nulabpass.scim._model import ScimGroupRow, ScimToken, ScimTombstone, ScimUserRow
from nulabpass.scim._query import (
    ScimPage,
    ScimQuery,
    group_document,
    sort_value,
    user_document,
)
from nulabpass.scim._schema import GROUP_RESOURCE, USER_RESOURCE, ResourceSchema

if TYPE_CHECKING:
    from nulabpass.ports import StoredPlan
    from nulabpass.stores.memory import _Tx

__all__ = ["MemoryScimRepository", "ScimState"]


class ScimState:
    """The SCIM tables of one memory store."""

    def __init__(self) -> None:
        self.users: dict[tuple[str, str], ScimUserRow] = {}
        self.users_by_org: dict[str, dict[str, None]] = {}
        self.tombstones: dict[tuple[str, str], ScimTombstone] = {}
        self.groups: dict[str, ScimGroupRow] = {}
        self.tokens: dict[str, ScimToken] = {}
        self.tokens_by_org: dict[str, dict[str, None]] = {}


def _page(
    docs: list[tuple[str, dict[str, Any]]], query: ScimQuery, resource: ResourceSchema
) -> ScimPage:
    # Ties are broken by id ascending in both directions, as the SQL store does.
    docs.sort(key=lambda d: d[0])
    if query.sort_by is not None:
        path: AttrPath = query.sort_by
        present = [d for d in docs if sort_value(d[1], path, resource) is not None]
        missing = [d for d in docs if sort_value(d[1], path, resource) is None]
        present.sort(key=lambda d: sort_value(d[1], path, resource), reverse=query.descending)
        docs = present + missing
    start = max(query.start_index, 1) - 1
    chosen = docs[start : start + max(query.count, 0)]
    return ScimPage(len(docs), tuple(ident for ident, _ in chosen))


class MemoryScimRepository:
    """SCIM state (:class:`~nulabpass.ports.ScimRepository`) of the memory store."""

    def __init__(self, tx: _Tx) -> None:
        self._tx = tx
        self._s = tx.state
        self._x: ScimState = tx.state.scim

    # -- users -----------------------------------------------------------------------

    def get_user(self, org_id: str, account_id: str) -> ScimUserRow | None:
        return self._x.users.get((org_id, account_id))

    def add_user(self, row: ScimUserRow) -> None:
        key = (row.org_id, row.account_id)
        if key in self._x.users:
            raise Conflict("The account already has SCIM attributes.", code="scim.user_exists")
        # The SQL store's foreign key: rows exist only for accounts the organization manages.
        account = self._s.accounts.get(row.account_id)
        if account is None or account.managed_by != row.org_id:
            raise account_not_managed(row.org_id, row.account_id)
        self._tx.put(self._x.users, key, row)
        self._tx.index_add(self._x.users_by_org, row.org_id, row.account_id)

    def update_user(self, row: ScimUserRow, *, emails_changed: bool = True) -> ScimUserRow:
        del emails_changed  # the profile, emails included, is stored as one value
        key = (row.org_id, row.account_id)
        current = self._x.users.get(key)
        if current is None:
            raise NotFound(f"The user {row.account_id} no longer exists.", code="scim.not_found")
        if current.version != row.version:
            raise StaleWrite(
                f"The user {row.account_id} was changed by another request; reload it."
            )
        new = attrs.evolve(row, version=row.version + 1)
        self._tx.put(self._x.users, key, new)
        return new

    def delete_user(self, org_id: str, account_id: str) -> None:
        self._tx.pop(self._x.users, (org_id, account_id))
        self._tx.index_remove(self._x.users_by_org, org_id, account_id)

    def query_users(self, query: ScimQuery) -> ScimPage:
        docs: list[tuple[str, dict[str, Any]]] = []
        flt: Filter | None = query.filter
        for account_id in self._x.users_by_org.get(query.org_id, {}):
            account = self._s.accounts.get(account_id)
            row = self._x.users.get((query.org_id, account_id))
            if account is None or row is None or account.managed_by != query.org_id:
                continue
            doc = user_document(account, row)
            if flt is None or matches(flt, doc, USER_RESOURCE):
                docs.append((account_id, doc))
        return _page(docs, query, USER_RESOURCE)

    def load_users(
        self, org_id: str, account_ids: Sequence[str]
    ) -> list[tuple[Account, ScimUserRow]]:
        out: list[tuple[Account, ScimUserRow]] = []
        for account_id in account_ids:
            account = self._s.accounts.get(account_id)
            row = self._x.users.get((org_id, account_id))
            if account is not None and row is not None and account.managed_by == org_id:
                out.append((account, row))
        return out

    def groups_by_account(self, org_id: str, account_ids: Sequence[str]) -> dict[str, list[Team]]:
        return {a: self.groups_of(org_id, a) for a in account_ids}

    def provisioning_facts(
        self, org_id: str
    ) -> tuple[Organization | None, list[Domain], StoredPlan | None]:
        org = self._s.orgs.get(org_id)
        if org is None:
            return None, [], None
        domains = sorted(
            (d for d in self._s.domains.values() if d.org_id == org_id), key=lambda d: d.name
        )
        return org, domains, self._s.plans.get(org_id)

    def token_and_facts(
        self, token_id: str
    ) -> tuple[ScimToken, tuple[Organization | None, list[Domain], StoredPlan | None]] | None:
        token = self._x.tokens.get(token_id)
        return None if token is None else (token, self.provisioning_facts(token.org_id))

    def add_tombstone(self, tombstone: ScimTombstone) -> None:
        self._tx.put(self._x.tombstones, (tombstone.org_id, tombstone.account_id), tombstone)

    def get_tombstone(self, org_id: str, account_id: str) -> ScimTombstone | None:
        return self._x.tombstones.get((org_id, account_id))

    # -- groups ----------------------------------------------------------------------

    def get_group(self, team_id: str) -> ScimGroupRow | None:
        return self._x.groups.get(team_id)

    def put_group(self, row: ScimGroupRow) -> None:
        self._tx.put(self._x.groups, row.team_id, row)

    def delete_group(self, team_id: str) -> None:
        self._tx.pop(self._x.groups, team_id)

    def query_groups(self, query: ScimQuery) -> ScimPage:
        docs: list[tuple[str, dict[str, Any]]] = []
        for team_id in self._s.teams_by_org.get(query.org_id, {}):
            team = self._s.teams[team_id]
            doc = group_document(team, self._x.groups.get(team_id))
            if query.filter is not None:
                doc["members"] = [
                    {"value": a.id} for a in self.managed_members(query.org_id, team_id)
                ]
                if not matches(query.filter, doc, GROUP_RESOURCE):
                    continue
            docs.append((team_id, doc))
        return _page(docs, query, GROUP_RESOURCE)

    def groups_of(self, org_id: str, account_id: str) -> list[Team]:
        teams = [
            self._s.teams[t]
            for t in self._s.teams_by_org.get(org_id, {})
            if account_id in self._s.team_members.get(t, {})
        ]
        return sorted(teams, key=lambda t: (t.name.casefold(), t.id))

    def managed_members(self, org_id: str, team_id: str) -> list[Account]:
        out: list[Account] = []
        for account_id in sorted(self._s.team_members.get(team_id, {})):
            account = self._s.accounts.get(account_id)
            if account is not None and account.managed_by == org_id:
                out.append(account)
        return out

    def managed_ids(self, org_id: str, account_ids: Sequence[str]) -> set[str]:
        managed = self._s.managed.get(org_id, {})
        return {a for a in account_ids if a in managed}

    # -- tokens ----------------------------------------------------------------------

    def add_token(self, token: ScimToken) -> None:
        if token.id in self._x.tokens:
            raise Conflict(f"SCIM token {token.id} already exists.", code="scim.token_exists")
        self._tx.put(self._x.tokens, token.id, token)
        self._tx.index_add(self._x.tokens_by_org, token.org_id, token.id)

    def get_token(self, token_id: str) -> ScimToken | None:
        return self._x.tokens.get(token_id)

    def list_tokens(self, org_id: str) -> list[ScimToken]:
        tokens = [self._x.tokens[t] for t in self._x.tokens_by_org.get(org_id, {})]
        return sorted(tokens, key=lambda t: (t.created_at, t.id))

    def update_token(self, token: ScimToken) -> ScimToken:
        current = self._x.tokens.get(token.id)
        if current is None:
            raise NotFound(f"The SCIM token {token.id} no longer exists.", code="scim.not_found")
        if current.version != token.version:
            raise StaleWrite(f"The SCIM token {token.id} was changed by another request.")
        new = attrs.evolve(token, version=token.version + 1)
        # last_used_at is written only by record_token_use (as in the SQL store).
        self._tx.put(
            self._x.tokens, token.id, attrs.evolve(new, last_used_at=current.last_used_at)
        )
        return new

    def record_token_use(self, token_id: str, at: datetime, *, stale_before: datetime) -> bool:
        current = self._x.tokens.get(token_id)
        if current is None:
            return False
        if current.last_used_at is not None and current.last_used_at > stale_before:
            return False
        self._tx.put(self._x.tokens, token_id, attrs.evolve(current, last_used_at=at))
        return True
