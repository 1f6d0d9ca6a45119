"""quotas, rate limits and gateway-control audit columns

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quotas",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("metric", sa.String(length=10), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("rolling_seconds", sa.Integer(), nullable=True),
        sa.Column("limit_value", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_quotas_org_id", "quotas", ["org_id"])
    op.create_index("ix_quotas_subject", "quotas", ["org_id", "scope", "subject_id", "metric", "period"], unique=True)
    op.create_table(
        "rate_limits",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("tpm", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rate_limits_org_id", "rate_limits", ["org_id"])
    op.create_index("ix_rate_limits_subject", "rate_limits", ["org_id", "scope", "subject"], unique=True)
    with op.batch_alter_table("audit_logs") as batch:
        batch.add_column(sa.Column("route_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("saved_cost_usd", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("idempotency_key", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("attempts", sa.JSON(), nullable=True))
    op.create_index("ix_audit_team_created", "audit_logs", ["team_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_team_created", table_name="audit_logs")
    with op.batch_alter_table("audit_logs") as batch:
        batch.drop_column("attempts")
        batch.drop_column("idempotency_key")
        batch.drop_column("saved_cost_usd")
        batch.drop_column("route_score")
    op.drop_table("rate_limits")
    op.drop_table("quotas")
