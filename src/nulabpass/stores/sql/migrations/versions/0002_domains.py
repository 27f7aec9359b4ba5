"""Domain verification: DNS challenges with their re-verification schedule, and the
rate limiter's counters.

Revision ID: 0002_domains
Revises: 0001

Types are spelled out rather than imported from ``schema.py``: a migration is a snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_domains"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the domain challenge and rate-limit tables."""
    op.create_table(
        "nulabpass_domain_challenges",
        sa.Column("domain_id", sa.String(), nullable=False),
        sa.Column("org_id", sa.String(), nullable=False),
        sa.Column("domain", sa.String(), nullable=False),
        sa.Column("token", sa.String(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_outcome", sa.String(), nullable=True),
        sa.Column("missing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("indeterminate_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("domain_id", name="pk_nulabpass_domain_challenges"),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["nulabpass_domains.id"],
            name="fk_nulabpass_domain_challenges_domain_id_nulabpass_domains",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["nulabpass_organizations.id"],
            name="fk_nulabpass_domain_challenges_org_id_nulabpass_organizations",
        ),
    )
    op.create_index(
        "ix_nulabpass_domain_challenges_next_check_at",
        "nulabpass_domain_challenges",
        ["next_check_at"],
    )
    op.create_table(
        "nulabpass_rate_limit_buckets",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name="pk_nulabpass_rate_limit_buckets"),
    )
    op.create_index(
        "ix_nulabpass_rate_limit_buckets_window_start",
        "nulabpass_rate_limit_buckets",
        ["window_start"],
    )


def downgrade() -> None:
    """Drop the domain challenge and rate-limit tables."""
    op.drop_index(
        "ix_nulabpass_rate_limit_buckets_window_start", table_name="nulabpass_rate_limit_buckets"
    )
    op.drop_table("nulabpass_rate_limit_buckets")
    op.drop_index(
        "ix_nulabpass_domain_challenges_next_check_at", table_name="nulabpass_domain_challenges"
    )
    op.drop_table("nulabpass_domain_challenges")
