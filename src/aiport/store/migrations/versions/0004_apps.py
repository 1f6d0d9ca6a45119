"""people, roles, sessions, apps, versions, conversations (issue: apps)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def _id() -> sa.Column[str]:
    return sa.Column("id", sa.String(length=40), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        _id(),
        sa.Column("token_hash", sa.String(length=64), nullable=False, unique=True),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=40), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("org_id", sa.String(length=40), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
    )
    op.create_index("ix_web_sessions_user", "web_sessions", ["user_id"])

    op.create_table(
        "invitations",
        _id(),
        sa.Column("org_id", sa.String(length=40), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("team_id", sa.String(length=40), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=True),
        sa.Column("team_role", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False, unique=True),
        sa.Column("invited_by", sa.String(length=40), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("accepted_at", _TS, nullable=True),
        sa.Column(
            "accepted_user_id", sa.String(length=40), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("revoked_at", _TS, nullable=True),
    )
    op.create_index("ix_invitations_org", "invitations", ["org_id", "created_at"])

    op.create_table(
        "apps",
        _id(),
        sa.Column("org_id", sa.String(length=40), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=40), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("team_id", sa.String(length=40), sa.ForeignKey("teams.id", ondelete="SET NULL"), nullable=True),
        sa.Column("visibility", sa.String(length=20), nullable=False),
        sa.Column("draft", sa.JSON(), nullable=False),
        sa.Column("published_version_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_apps_org_slug", "apps", ["org_id", "slug"], unique=True)

    op.create_table(
        "app_team_shares",
        sa.Column("app_id", sa.String(length=40), sa.ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("team_id", sa.String(length=40), sa.ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    )

    op.create_table(
        "app_versions",
        _id(),
        sa.Column("app_id", sa.String(length=40), sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(length=400), nullable=True),
        sa.Column("created_by", sa.String(length=40), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_app_versions_app_number", "app_versions", ["app_id", "number"], unique=True)

    op.create_table(
        "app_keys",
        sa.Column(
            "api_key_id", sa.String(length=40), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("app_id", sa.String(length=40), sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    )
    op.create_index("ix_app_keys_app_id", "app_keys", ["app_id"])

    op.create_table(
        "conversations",
        _id(),
        sa.Column("org_id", sa.String(length=40), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("app_id", sa.String(length=40), sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.String(length=40), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("is_draft", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_conversations_app_id", "conversations", ["app_id"])
    op.create_index("ix_conversations_user_updated", "conversations", ["user_id", "updated_at"])

    op.create_table(
        "conversation_messages",
        _id(),
        sa.Column(
            "conversation_id",
            sa.String(length=40),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("app_version_id", sa.String(length=40), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("log_id", sa.String(length=40), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_conversation_messages_conv", "conversation_messages", ["conversation_id", "id"])

    with op.batch_alter_table("audit_logs") as batch_op:
        batch_op.add_column(sa.Column("app_version_id", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_logs") as batch_op:
        batch_op.drop_column("app_version_id")
    op.drop_index("ix_conversation_messages_conv", table_name="conversation_messages")
    op.drop_table("conversation_messages")
    op.drop_index("ix_conversations_user_updated", table_name="conversations")
    op.drop_index("ix_conversations_app_id", table_name="conversations")
    op.drop_table("conversations")
    op.drop_index("ix_app_keys_app_id", table_name="app_keys")
    op.drop_table("app_keys")
    op.drop_index("ix_app_versions_app_number", table_name="app_versions")
    op.drop_table("app_versions")
    op.drop_table("app_team_shares")
    op.drop_index("ix_apps_org_slug", table_name="apps")
    op.drop_table("apps")
    op.drop_index("ix_invitations_org", table_name="invitations")
    op.drop_table("invitations")
    op.drop_index("ix_web_sessions_user", table_name="web_sessions")
    op.drop_table("web_sessions")
