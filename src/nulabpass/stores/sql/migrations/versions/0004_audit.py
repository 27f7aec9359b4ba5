"""Audit ledger: signed checkpoints, purge anchors, retention periods; actor-time index.

Revision ID: 0004_audit
Revises: 0003_saml

Types are spelled out rather than imported from ``schema.py``: a migration is a snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_audit"
down_revision: str | Sequence[str] | None = "0003_saml"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the audit ledger tables; index events by actor and time."""
    op.create_table(
        "nulabpass_audit_checkpoints",
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.String(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("signature", sa.String(), nullable=False),
        sa.Column("frontier", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "tree_size", name="pk_nulabpass_audit_checkpoints"),
    )
    op.create_table(
        "nulabpass_audit_anchors",
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.String(), nullable=False),
        sa.Column("frontier", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name="pk_nulabpass_audit_anchors"),
    )
    op.create_table(
        "nulabpass_audit_retention",
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("months", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name="pk_nulabpass_audit_retention"),
    )
    # Queries for one actor in a time range read only that actor's entries in time order.
    op.create_index(
        "ix_nulabpass_audit_events_scope_actor_id_occurred_at",
        "nulabpass_audit_events",
        ["scope", "actor_id", "occurred_at"],
    )
    op.drop_index("ix_nulabpass_audit_events_scope_actor_id", table_name="nulabpass_audit_events")


def downgrade() -> None:
    """Drop the audit ledger tables and restore the actor index."""
    op.create_index(
        "ix_nulabpass_audit_events_scope_actor_id",
        "nulabpass_audit_events",
        ["scope", "actor_id"],
    )
    op.drop_index(
        "ix_nulabpass_audit_events_scope_actor_id_occurred_at",
        table_name="nulabpass_audit_events",
    )
    op.drop_table("nulabpass_audit_retention")
    op.drop_table("nulabpass_audit_anchors")
    op.drop_table("nulabpass_audit_checkpoints")
