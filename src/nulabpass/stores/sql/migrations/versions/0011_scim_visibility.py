"""SCIM users exist only for accounts their organization manages, and sort in index order.

Revision ID: 0011_scim_visibility
Revises: 0010_audit_indexes

A foreign key from the SCIM users' ``(account_id, org_id)`` to the accounts'
``(id, managed_by)``, ``RESTRICT`` on update and delete, makes the rule the service has
always followed a property of the database: a SCIM row names an account its
organization manages, and the account can be neither deleted nor released while the
row exists. User lists and counts then read the SCIM table alone, without a join with
the accounts. The key needs ``(id, managed_by)`` unique; the index on
``(managed_by, id)`` becomes that unique index.

Rows that broke the rule (left by a release or a deletion before the service deleted
them) were invisible to every query; they are deleted first, emails included.

Each organization's number of SCIM users is kept in ``nulabpass_scim_user_counts``,
written with every row added or deleted, so an unfiltered list reads its total rather
than counting (a count grows with the organization).

On PostgreSQL ``account_id`` and ``user_name_key`` take ``COLLATE "C"``, the code point
order every SCIM page is sorted in, so the index on ``(org_id, user_name_key,
account_id)`` yields a page sorted by userName in order, without a sort step.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_scim_visibility"
down_revision: str | Sequence[str] | None = "0010_audit_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_USERS = "nulabpass_scim_users"
_COUNTS = "nulabpass_scim_user_counts"
_ACCOUNTS = "nulabpass_accounts"
_FK = "fk_nulabpass_scim_users_account_id_nulabpass_accounts"
_OLD_INDEX = "ix_nulabpass_accounts_managed_by_id"
_UNIQUE_INDEX = "uq_nulabpass_accounts_managed_by_id"
#: Rows naming an account their organization does not manage, emails first.
_DELETE_UNMANAGED = (
    "DELETE FROM nulabpass_scim_emails WHERE NOT EXISTS (SELECT 1 FROM nulabpass_accounts a "
    "WHERE a.id = nulabpass_scim_emails.account_id "
    "AND a.managed_by = nulabpass_scim_emails.org_id)",
    "DELETE FROM nulabpass_scim_users WHERE NOT EXISTS (SELECT 1 FROM nulabpass_accounts a "
    "WHERE a.id = nulabpass_scim_users.account_id "
    "AND a.managed_by = nulabpass_scim_users.org_id)",
)
_FILL_COUNTS = (
    "INSERT INTO nulabpass_scim_user_counts (org_id, users) "
    "SELECT org_id, COUNT(*) FROM nulabpass_scim_users GROUP BY org_id"
)


def _collate(collation: str | None) -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for column in ("account_id", "user_name_key"):
        op.alter_column(
            _USERS,
            column,
            existing_type=sa.String(),
            type_=sa.String(collation=collation),
            existing_nullable=False,
        )


def upgrade() -> None:
    """Delete the rows that break the rule, then add the unique index, the key, the
    code point collation and the counts."""
    for statement in _DELETE_UNMANAGED:
        op.execute(statement)
    op.create_index(_UNIQUE_INDEX, _ACCOUNTS, ["managed_by", "id"], unique=True)
    op.drop_index(_OLD_INDEX, table_name=_ACCOUNTS)
    _collate("C")
    with op.batch_alter_table(_USERS) as batch:
        batch.create_foreign_key(
            _FK,
            _ACCOUNTS,
            ["account_id", "org_id"],
            ["id", "managed_by"],
            onupdate="RESTRICT",
            ondelete="RESTRICT",
        )
    op.create_table(
        _COUNTS,
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("users", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["nulabpass_organizations.id"],
            name="fk_nulabpass_scim_user_counts_org_id_nulabpass_organizations",
        ),
        sa.PrimaryKeyConstraint("org_id", name="pk_nulabpass_scim_user_counts"),
    )
    op.execute(_FILL_COUNTS)


def downgrade() -> None:
    """Restore the schema of revision 0009_scim_indexes (the deleted rows stay gone)."""
    op.drop_table(_COUNTS)
    with op.batch_alter_table(_USERS) as batch:
        batch.drop_constraint(_FK, type_="foreignkey")
    _collate(None)
    op.create_index(_OLD_INDEX, _ACCOUNTS, ["managed_by", "id"])
    op.drop_index(_UNIQUE_INDEX, table_name=_ACCOUNTS)
