"""Adding and removing documents: extract, dedupe by content hash, chunk, index — in one
transaction, so a failed upload leaves nothing half-written."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.domain.errors import GatewayError, Unprocessable
from aiport.knowledge.analyze import search_text
from aiport.knowledge.chunking import chunk_blocks
from aiport.knowledge.embeddings import Embedder
from aiport.knowledge.extract import extract
from aiport.store.knowledge import Chunk, Collection, Document
from aiport.store.models import iso_utc


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "duplicate_document"


@dataclass(frozen=True, slots=True)
class Limits:
    max_chars: int


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def add_document(
    session: AsyncSession,
    collection: Collection,
    *,
    data: bytes,
    filename: str,
    content_type: str | None,
    uploaded_by: str,
    title: str | None,
    limits: Limits,
    embedder: Embedder | None = None,
) -> Document:
    extracted = await asyncio.to_thread(extract, data, filename, content_type)
    body = extracted.text
    if len(body) > limits.max_chars:
        raise Unprocessable(
            f"'{filename}' has {len(body)} characters of text; the limit is {limits.max_chars}. Split it.",
            param="file",
            code="document_too_long",
        )
    digest = hashlib.sha256(body.encode()).hexdigest()
    existing = (
        await session.execute(
            select(Document).where(Document.collection_id == collection.id, Document.content_hash == digest)
        )
    ).scalar_one_or_none()
    if existing is not None:
        raise Conflict(
            f"This collection already has the same text as '{existing.title}' ({existing.id}).",
            param="file",
            headers={"x-aiport-duplicate-of": existing.id},
        )
    chunks = chunk_blocks(extracted.blocks)
    doc = Document(
        collection_id=collection.id,
        org_id=collection.org_id,
        uploaded_by=uploaded_by,
        title=(title or extracted.title)[:300],
        filename=filename[:300],
        media_type=extracted.media_type,
        content_hash=digest,
        size_bytes=len(data),
        chars=len(body),
        chunk_count=len(chunks),
    )
    session.add(doc)
    await session.flush()
    vectors: list[list[float]] | None = None
    if embedder is not None:
        vectors = await asyncio.to_thread(embedder.embed, [f"{doc.title}. {c.heading}. {c.text}" for c in chunks])
        doc.embedded = embedder.name
    rows = [
        Chunk(
            document_id=doc.id,
            collection_id=collection.id,
            ordinal=c.ordinal,
            heading=c.heading,
            text=c.text,
            # the title and heading are searchable too: "the Q3 report" finds its chunks
            search_text=search_text(f"{doc.title} {c.heading} {c.text}"),
            embedding=vectors[i] if vectors is not None else None,
        )
        for i, c in enumerate(chunks)
    ]
    session.add_all(rows)
    await session.flush()
    if not is_postgres(session):  # PostgreSQL indexes the generated tsvector column by itself
        await session.execute(
            text("INSERT INTO knowledge_fts (search_text, chunk_id, collection_id) VALUES (:s, :c, :k)"),
            [{"s": r.search_text, "c": r.id, "k": collection.id} for r in rows],
        )
    return doc


async def delete_document(session: AsyncSession, doc: Document) -> None:
    if not is_postgres(session):
        await session.execute(
            text(
                "DELETE FROM knowledge_fts WHERE chunk_id IN (SELECT id FROM knowledge_chunks WHERE document_id = :d)"
            ),
            {"d": doc.id},
        )
    await session.execute(delete(Chunk).where(Chunk.document_id == doc.id))
    await session.delete(doc)


async def delete_collection(session: AsyncSession, col: Collection) -> None:
    if not is_postgres(session):
        await session.execute(text("DELETE FROM knowledge_fts WHERE collection_id = :k"), {"k": col.id})
    await session.execute(delete(Chunk).where(Chunk.collection_id == col.id))
    await session.execute(delete(Document).where(Document.collection_id == col.id))
    await session.delete(col)


def document_view(doc: Document) -> dict[str, object]:
    return {
        "id": doc.id,
        "object": "knowledge.document",
        "collection_id": doc.collection_id,
        "title": doc.title,
        "filename": doc.filename,
        "media_type": doc.media_type,
        "size_bytes": doc.size_bytes,
        "chars": doc.chars,
        "chunks": doc.chunk_count,
        "content_hash": doc.content_hash,
        "embedded": doc.embedded,
        "uploaded_by": doc.uploaded_by,
        "created_at": iso_utc(doc.created_at),
    }


def collection_view(col: Collection, documents: int | None = None) -> dict[str, object]:
    view: dict[str, object] = {
        "id": col.id,
        "object": "knowledge.collection",
        "name": col.name,
        "description": col.description,
        "visibility": col.visibility,
        "team_id": col.team_id,
        "owner_id": col.owner_id,
        "created_at": iso_utc(col.created_at),
    }
    if documents is not None:
        view["documents"] = documents
    return view
