"""Retrieval with citations: full-text ranking in the database, optionally fused with
embedding similarity by reciprocal rank fusion (RRF).

Full text: SQLite FTS5 bm25 or PostgreSQL ts_rank_cd over the analyzed terms, OR-ed (a
question rarely shares every word with its answer). Embeddings: cosine over the chunks of
the searched collections, computed in process (fine to ~100k chunks; beyond that, a
vector index is the next step). RRF needs no score calibration between the two.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from aiport.knowledge.analyze import query_terms
from aiport.knowledge.documents import is_postgres
from aiport.knowledge.embeddings import Embedder
from aiport.store.knowledge import Chunk, Document
from aiport.store.models import iso_utc

RRF_K = 60
CANDIDATES = 50


@dataclass(slots=True)
class Hit:
    chunk_id: str
    document_id: str
    collection_id: str
    title: str
    heading: str
    text: str
    ordinal: int
    score: float
    created_at: str | None = None
    ranks: dict[str, int] = field(default_factory=dict)

    def citation(self, number: int) -> dict[str, Any]:
        return {
            "number": number,
            "document_id": self.document_id,
            "collection_id": self.collection_id,
            "title": self.title,
            "chunk_id": self.chunk_id,
            "chunk": self.ordinal,
            "heading": self.heading,
            "score": round(self.score, 6),
            "snippet": self.text[:300],
        }


async def fts_ranked(
    session: AsyncSession, query: str, collection_ids: list[str], limit: int
) -> list[tuple[str, float]]:
    """(chunk id, score: higher is better) by full-text rank."""
    words = query_terms(query)
    if not words or not collection_ids:
        return []
    if is_postgres(session):
        tsquery = " | ".join("'" + w.replace("'", "") + "'" for w in words)
        stmt = text(
            "SELECT id, ts_rank_cd(search_tsv, q) AS rank FROM knowledge_chunks, to_tsquery('simple', :q) q "
            "WHERE collection_id = ANY(:cols) AND search_tsv @@ q ORDER BY rank DESC, id LIMIT :n"
        )
        rows = await session.execute(stmt, {"q": tsquery, "cols": collection_ids, "n": limit})
        return [(r[0], float(r[1])) for r in rows]
    match = " OR ".join('"' + w.replace('"', "") + '"' for w in words)
    marks = ", ".join(f":c{i}" for i in range(len(collection_ids)))
    stmt = text(
        f"SELECT chunk_id, bm25(knowledge_fts) AS rank FROM knowledge_fts WHERE knowledge_fts MATCH :m "
        f"AND collection_id IN ({marks}) ORDER BY rank LIMIT :n"
    )
    params: dict[str, Any] = {"m": match, "n": limit, **{f"c{i}": c for i, c in enumerate(collection_ids)}}
    rows = await session.execute(stmt, params)
    return [(r[0], -float(r[1])) for r in rows]


async def vector_ranked(
    session: AsyncSession, query: str, collection_ids: list[str], embedder: Embedder, limit: int
) -> list[tuple[str, float]]:
    import numpy as np

    rows = (
        await session.execute(
            select(Chunk.id, Chunk.embedding).where(
                Chunk.collection_id.in_(collection_ids), Chunk.embedding.is_not(None)
            )
        )
    ).all()
    if not rows:
        return []
    (qvec,) = await asyncio.to_thread(embedder.embed, [query])
    matrix = np.asarray([r[1] for r in rows], dtype=np.float32)
    sims = matrix @ np.asarray(qvec, dtype=np.float32)
    order = np.argsort(-sims)[:limit]
    return [(rows[i][0], float(sims[i])) for i in order]


def rrf(rankings: dict[str, list[tuple[str, float]]], k: int = RRF_K) -> list[tuple[str, float, dict[str, int]]]:
    """Reciprocal rank fusion: score = sum over rankings of 1 / (k + rank)."""
    scores: dict[str, float] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, ranking in rankings.items():
        for rank, (chunk_id, _) in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (k + rank)
            ranks.setdefault(chunk_id, {})[name] = rank
    fused = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(cid, score, ranks[cid]) for cid, score in fused]


async def search(
    session: AsyncSession,
    query: str,
    collection_ids: list[str],
    *,
    k: int = 5,
    embedder: Embedder | None = None,
) -> list[Hit]:
    """The best `k` chunks for `query` in the given (already authorized) collections."""
    rankings = {"fts": await fts_ranked(session, query, collection_ids, CANDIDATES)}
    if embedder is not None:
        rankings["vector"] = await vector_ranked(session, query, collection_ids, embedder, CANDIDATES)
        fused = rrf(rankings)[:k]
    else:
        fused = [(cid, score, {"fts": i}) for i, (cid, score) in enumerate(rankings["fts"][:k], start=1)]
    if not fused:
        return []
    ids = [cid for cid, _, _ in fused]
    rows = (
        await session.execute(
            select(Chunk, Document.title, Document.created_at)
            .join(Document, Document.id == Chunk.document_id)
            .where(Chunk.id.in_(ids))
        )
    ).all()
    by_id = {chunk.id: (chunk, title, created) for chunk, title, created in rows}
    hits: list[Hit] = []
    for cid, score, ranks in fused:
        if cid not in by_id:
            continue
        chunk, title, created = by_id[cid]
        hits.append(
            Hit(
                chunk_id=chunk.id,
                document_id=chunk.document_id,
                collection_id=chunk.collection_id,
                title=title,
                heading=chunk.heading,
                text=chunk.text,
                ordinal=chunk.ordinal,
                score=score,
                created_at=iso_utc(created),
                ranks=ranks,
            )
        )
    return hits


async def document_chunks(session: AsyncSession, document_id: str, limit: int) -> list[Hit]:
    """The first chunks of one document in order: the context for "summarize <that document>"."""
    rows = (
        await session.execute(
            select(Chunk, Document.title, Document.created_at)
            .join(Document, Document.id == Chunk.document_id)
            .where(Chunk.document_id == document_id)
            .order_by(Chunk.ordinal)
            .limit(limit)
        )
    ).all()
    return [
        Hit(c.id, c.document_id, c.collection_id, title, c.heading, c.text, c.ordinal, 1.0, iso_utc(created))
        for c, title, created in rows
    ]
