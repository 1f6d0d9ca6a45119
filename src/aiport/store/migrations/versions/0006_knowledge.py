"""knowledge collections, documents, chunks, full-text index, clarifications, trace spans

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def _id() -> sa.Column[str]:
    return sa.Column("id", sa.String(length=40), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "knowledge_collections",
        _id(),
        sa.Column("org_id", sa.String(length=40), sa.ForeignKey("orgs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("owner_id", sa.String(length=40), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("team_id", sa.String(length=40), sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=True),
        sa.Column("visibility", sa.String(length=20), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_knowledge_collections_org", "knowledge_collections", ["org_id", "visibility"])
    op.create_table(
        "knowledge_documents",
        _id(),
        sa.Column(
            "collection_id",
            sa.String(length=40),
            sa.ForeignKey("knowledge_collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("uploaded_by", sa.String(length=40), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("chars", sa.Integer(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("embedded", sa.String(length=100), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index(
        "ix_knowledge_documents_hash", "knowledge_documents", ["collection_id", "content_hash"], unique=True
    )
    op.create_index("ix_knowledge_documents_uploader", "knowledge_documents", ["uploaded_by", "created_at"])
    op.create_table(
        "knowledge_chunks",
        _id(),
        sa.Column(
            "document_id",
            sa.String(length=40),
            sa.ForeignKey("knowledge_documents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("collection_id", sa.String(length=40), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("heading", sa.String(length=500), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("embedding", sa.JSON(), nullable=True),
    )
    op.create_index("ix_knowledge_chunks_doc", "knowledge_chunks", ["document_id", "ordinal"])
    op.create_index("ix_knowledge_chunks_collection_id", "knowledge_chunks", ["collection_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE knowledge_chunks ADD COLUMN search_tsv tsvector "
            "GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED"
        )
        op.execute("CREATE INDEX ix_knowledge_chunks_tsv ON knowledge_chunks USING GIN (search_tsv)")
    else:
        op.execute(
            "CREATE VIRTUAL TABLE knowledge_fts USING fts5("
            "search_text, chunk_id UNINDEXED, collection_id UNINDEXED, tokenize='unicode61 remove_diacritics 2')"
        )
    op.create_table(
        "clarifications",
        _id(),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=False),
        sa.Column("original", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("resolved_at", _TS, nullable=True),
        sa.Column("resolved_choice", sa.JSON(), nullable=True),
        sa.Column("resolved_request_id", sa.String(length=64), nullable=True),
    )
    op.create_index("ix_clarifications_user", "clarifications", ["user_id", "created_at"])
    op.create_table(
        "trace_spans",
        _id(),
        sa.Column("trace_id", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.String(length=40), nullable=True),
        sa.Column("org_id", sa.String(length=40), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("args", sa.JSON(), nullable=True),
        sa.Column("result_preview", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
    )
    op.create_index("ix_trace_spans_trace", "trace_spans", ["trace_id", "started_at"])
    with op.batch_alter_table("audit_logs") as batch_op:
        batch_op.add_column(sa.Column("parent_request_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_logs") as batch_op:
        batch_op.drop_column("parent_request_id")
    op.drop_index("ix_trace_spans_trace", table_name="trace_spans")
    op.drop_table("trace_spans")
    op.drop_index("ix_clarifications_user", table_name="clarifications")
    op.drop_table("clarifications")
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE IF EXISTS knowledge_fts")
    op.drop_table("knowledge_chunks")
    op.drop_index("ix_knowledge_documents_uploader", table_name="knowledge_documents")
    op.drop_index("ix_knowledge_documents_hash", table_name="knowledge_documents")
    op.drop_table("knowledge_documents")
    op.drop_index("ix_knowledge_collections_org", table_name="knowledge_collections")
    op.drop_table("knowledge_collections")
