"""Chunks that respect the document's structure: a heading starts a new chunk and is
carried as the chunk's heading path; paragraphs are kept whole unless one alone is
longer than the limit, then it is split at sentence ends."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiport.knowledge.extract import Block

MAX_CHARS = 1200
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+|(?<=다\.)\s*|(?<=요\.)\s*")


@dataclass(frozen=True, slots=True)
class ChunkText:
    ordinal: int
    heading: str  # "Report > Results"
    text: str


def _split_long(text: str, limit: int) -> list[str]:
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        if not sentence:
            continue
        while len(sentence) > limit:  # one enormous "sentence": cut it
            pieces.append(sentence[:limit])
            sentence = sentence[limit:]
        if current and len(current) + 1 + len(sentence) > limit:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


def chunk_blocks(blocks: list[Block], max_chars: int = MAX_CHARS) -> list[ChunkText]:
    chunks: list[ChunkText] = []
    path: list[tuple[int, str]] = []
    parts: list[str] = []
    size = 0

    def heading() -> str:
        return " > ".join(text for _, text in path)[:500]

    def flush() -> None:
        nonlocal parts, size
        if parts:
            chunks.append(ChunkText(len(chunks), heading(), "\n\n".join(parts)))
        parts, size = [], 0

    for block in blocks:
        if block.is_heading:
            flush()
            path = [(lvl, t) for lvl, t in path if lvl < block.level] + [(block.level, block.text)]
            continue
        for piece in _split_long(block.text, max_chars):
            if parts and size + len(piece) + 2 > max_chars:
                flush()
            parts.append(piece)
            size += len(piece) + 2
    flush()
    if not chunks and path:  # a document of headings only
        chunks.append(ChunkText(0, heading(), heading()))
    return chunks
