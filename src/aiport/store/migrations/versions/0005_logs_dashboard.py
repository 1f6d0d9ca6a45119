"""indexes for the admin logs dashboard filters (issue: web UI)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # keyset pagination is (created_at, id) descending inside one org, per filter
    op.create_index("ix_audit_org_app_created", "audit_logs", ["org_id", "app_id", "created_at", "id"])
    op.create_index("ix_audit_org_model_created", "audit_logs", ["org_id", "model_used", "created_at", "id"])
    op.create_index("ix_audit_org_status_created", "audit_logs", ["org_id", "status", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_org_status_created", table_name="audit_logs")
    op.drop_index("ix_audit_org_model_created", table_name="audit_logs")
    op.drop_index("ix_audit_org_app_created", table_name="audit_logs")
