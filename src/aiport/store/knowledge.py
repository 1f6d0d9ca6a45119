"""Tables for knowledge (collections, documents, chunks), clarifications and trace spans.

Full-text search lives beside the chunks: on SQLite an FTS5 table `knowledge_fts`
(written with the chunks, same transaction); on PostgreSQL a generated tsvector column
`knowledge_chunks.search_tsv` with a GIN index. Both index `search_text`, the chunk's
terms after `knowledge.analyze` (Korean as character bigrams), so the two databases
find the same things. Both are created in migration 0006, not here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aiport.domain.ids import new_id
from aiport.store.models import Base, utcnow


class Collection(Base):
    """A set of documents shared as a unit: private (its owner), a team's, or the org's."""

    __tablename__ = "knowledge_collections"
    __table_args__ = (Index("ix_knowledge_collections_org", "org_id", "visibility"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("kc_"))
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), nullable=True)
    visibility: Mapped[str] = mapped_column(String(20), default="private")  # private | team | org
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Document(Base):
    __tablename__ = "knowledge_documents"
    __table_args__ = (
        Index("ix_knowledge_documents_hash", "collection_id", "content_hash", unique=True),
        Index("ix_knowledge_documents_uploader", "uploaded_by", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("doc_"))
    collection_id: Mapped[str] = mapped_column(ForeignKey("knowledge_collections.id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(String(40))
    uploaded_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    title: Mapped[str] = mapped_column(String(300))
    filename: Mapped[str] = mapped_column(String(300))
    media_type: Mapped[str] = mapped_column(String(100))
    content_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of the extracted text
    size_bytes: Mapped[int] = mapped_column(Integer)
    chars: Mapped[int] = mapped_column(Integer)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    embedded: Mapped[str | None] = mapped_column(String(100), nullable=True)  # embedding model name
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Chunk(Base):
    __tablename__ = "knowledge_chunks"
    __table_args__ = (Index("ix_knowledge_chunks_doc", "document_id", "ordinal"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("chk_"))
    document_id: Mapped[str] = mapped_column(ForeignKey("knowledge_documents.id", ondelete="CASCADE"))
    collection_id: Mapped[str] = mapped_column(String(40), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    heading: Mapped[str] = mapped_column(String(500), default="")
    text: Mapped[str] = mapped_column(Text)
    search_text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)


class Clarification(Base):
    """A question asked back instead of guessing, and (once answered) the request it resumed."""

    __tablename__ = "clarifications"
    __table_args__ = (Index("ix_clarifications_user", "user_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("clr_"))
    org_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(String(40))
    request_id: Mapped[str] = mapped_column(String(64))  # the step that asked
    kind: Mapped[str] = mapped_column(String(40))  # missing_referent | close_candidates | form_variable
    question: Mapped[str] = mapped_column(Text)
    choices: Mapped[list[Any]] = mapped_column(JSON)
    original: Mapped[dict[str, Any]] = mapped_column(JSON)  # the request to resume
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    resolved_choice: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    resolved_request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class TraceSpan(Base):
    """One step of a request's process: a retrieval, a tool call, a model step."""

    __tablename__ = "trace_spans"
    __table_args__ = (Index("ix_trace_spans_trace", "trace_id", "started_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("spn_"))
    trace_id: Mapped[str] = mapped_column(String(64))  # the request id
    parent_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    org_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))  # retrieval | tool | model | clarify | agent
    args: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    result_preview: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # ok | error
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
