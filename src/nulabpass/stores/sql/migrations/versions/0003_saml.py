"""SAML: the replay cache of accepted assertions.

Revision ID: 0003_saml
Revises: 0002_domains

Types are spelled out rather than imported from ``schema.py``: a migration is a snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_saml"
down_revision: str | Sequence[str] | None = "0002_domains"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the SAML replay cache table."""
    op.create_table(
        "nulabpass_saml_replay",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_nulabpass_saml_replay"),
    )
    op.create_index("ix_nulabpass_saml_replay_expires_at", "nulabpass_saml_replay", ["expires_at"])


def downgrade() -> None:
    """Drop the SAML replay cache table."""
    op.drop_index("ix_nulabpass_saml_replay_expires_at", table_name="nulabpass_saml_replay")
    op.drop_table("nulabpass_saml_replay")
