"""IdP metadata URLs: each organization's metadata source, its refresh schedule and a
document awaiting an admin's approval.

Revision ID: 0007_saml_metadata
Revises: 0006_saml_login

Types are spelled out rather than imported from ``schema.py``: a migration is a snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_saml_metadata"
down_revision: str | Sequence[str] | None = "0006_saml_login"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_TABLE = "nulabpass_saml_metadata"


def upgrade() -> None:
    """Create the metadata-source table."""
    op.create_table(
        _TABLE,
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("refresh_interval_seconds", sa.Integer(), nullable=False),
        sa.Column("next_refresh_at", _TS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("last_checked_at", _TS, nullable=True),
        sa.Column("last_success_at", _TS, nullable=True),
        sa.Column("last_error_code", sa.String(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("document_sha256", sa.String(), nullable=True),
        sa.Column("pending_document", sa.LargeBinary(), nullable=True),
        sa.Column("pending_sha256", sa.String(), nullable=True),
        sa.Column("pending_fetched_at", _TS, nullable=True),
        sa.Column("pending_reason", sa.String(), nullable=True),
        sa.Column("rejected_sha256", sa.String(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", name=f"pk_{_TABLE}"),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["nulabpass_organizations.id"],
            name=f"fk_{_TABLE}_org_id_nulabpass_organizations",
        ),
    )
    op.create_index(f"ix_{_TABLE}_next_refresh_at", _TABLE, ["next_refresh_at"])


def downgrade() -> None:
    """Drop the metadata-source table."""
    op.drop_index(f"ix_{_TABLE}_next_refresh_at", table_name=_TABLE)
    op.drop_table(_TABLE)
