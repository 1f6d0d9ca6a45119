"""Text out of an uploaded file, with its structure: headings and paragraphs.

One real parser per format: markdown-it-py for Markdown, the standard library's HTML
parser, pypdf for PDF, python-docx for Word. Anything else, a file that does not parse,
or a file with no text (a scanned PDF) is a 422 that says what to do.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath

from aiport.domain.errors import Unprocessable

FORMATS = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
_BY_TYPE = {v: k for k, v in reversed(FORMATS.items())}


@dataclass(frozen=True, slots=True)
class Block:
    """A heading (level 1-6) or a paragraph (level 0)."""

    text: str
    level: int = 0

    @property
    def is_heading(self) -> bool:
        return self.level > 0


@dataclass(frozen=True, slots=True)
class Extracted:
    title: str
    media_type: str
    blocks: list[Block]

    @property
    def text(self) -> str:
        return "\n\n".join(b.text for b in self.blocks)


def media_type_of(filename: str, content_type: str | None) -> str:
    suffix = PurePath(filename).suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    base = (content_type or "").split(";")[0].strip().lower()
    if base in _BY_TYPE:
        return base
    kinds = ", ".join(sorted({k for k in FORMATS if len(k) <= 5}))
    raise Unprocessable(
        f"'{filename}' is not a supported document type; upload one of {kinds}.",
        param="filename",
        code="unsupported_document",
    )


def extract(data: bytes, filename: str, content_type: str | None = None) -> Extracted:
    media_type = media_type_of(filename, content_type)
    stem = PurePath(filename).stem or filename
    try:
        if media_type == "text/plain":
            title, blocks = stem, _paragraphs(_decode(data))
        elif media_type == "text/markdown":
            title, blocks = _markdown(_decode(data), stem)
        elif media_type == "text/html":
            title, blocks = _html(_decode(data), stem)
        elif media_type == "application/pdf":
            title, blocks = _pdf(data, stem)
        else:
            title, blocks = _docx(data, stem)
    except Unprocessable:
        raise
    except Exception as exc:  # a parser's own error: the file is damaged or not what it claims
        raise Unprocessable(
            f"'{filename}' could not be read as {media_type}: {type(exc).__name__}: {str(exc)[:200]}.",
            param="file",
            code="unreadable_document",
        ) from exc
    blocks = [b for b in blocks if b.text.strip()]
    if not blocks:
        raise Unprocessable(
            f"'{filename}' contains no text to index (a scanned PDF needs OCR first).",
            param="file",
            code="empty_document",
        )
    return Extracted(title=title.strip()[:300] or stem, media_type=media_type, blocks=blocks)


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp949"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


_SPACES = re.compile(r"[^\S\n]+")  # any whitespace but newlines, NBSP included


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _paragraphs(text: str) -> list[Block]:
    """Plain text: blank lines separate paragraphs; single newlines are soft wraps."""
    parts = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    return [Block(_clean(p.replace("\n", " "))) for p in parts if p.strip()]


def _markdown(text: str, stem: str) -> tuple[str, list[Block]]:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    blocks: list[Block] = []
    level = 0
    cells: list[str] = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            level = int(tok.tag[1:])
        elif tok.type == "inline":
            content = _clean(tok.content)
            if level:
                blocks.append(Block(content, level))
                level = 0
            elif tokens[i - 1].type in ("th_open", "td_open"):
                cells.append(content)
            else:
                blocks.append(Block(content))
        elif tok.type == "tr_close" and cells:
            blocks.append(Block(" | ".join(cells)))
            cells = []
        elif tok.type in ("fence", "code_block"):
            blocks.append(Block(tok.content.strip()))
    title = next((b.text for b in blocks if b.level == 1), stem)
    return title, blocks


class _HTMLBlocks(HTMLParser):
    _BLOCK = {"p", "div", "li", "td", "th", "tr", "blockquote", "pre", "section", "article", "br", "dt", "dd"}
    _SKIP = {"script", "style", "noscript", "template", "svg", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.title = ""
        self._buf: list[str] = []
        self._level = 0
        self._skip = 0
        self._in_title = False

    def _flush(self) -> None:
        text = _clean(" ".join(self._buf))
        if text:
            self.blocks.append(Block(text, self._level))
        self._buf = []
        self._level = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self._SKIP:
            self._skip += 1
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self._flush()
            self._level = int(tag[1])
        elif tag in self._BLOCK:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6") or tag in self._BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self._buf.append(data)


def _html(text: str, stem: str) -> tuple[str, list[Block]]:
    parser = _HTMLBlocks()
    parser.feed(text)
    parser.close()
    parser._flush()
    title = _clean(parser.title) or next((b.text for b in parser.blocks if b.level == 1), stem)
    return title, parser.blocks


def _pdf(data: bytes, stem: str) -> tuple[str, list[Block]]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        raise Unprocessable(
            "The PDF is encrypted; upload it without a password.", param="file", code="encrypted_document"
        )
    blocks: list[Block] = []
    for page in reader.pages:
        blocks.extend(_paragraphs(page.extract_text() or ""))
    meta_title = (reader.metadata.title if reader.metadata else None) or ""
    return (_clean(str(meta_title)) or stem), blocks


def _docx(data: bytes, stem: str) -> tuple[str, list[Block]]:
    import docx

    document = docx.Document(io.BytesIO(data))
    blocks: list[Block] = []
    for para in document.paragraphs:
        style = (para.style.name if para.style is not None else "") or ""
        text = _clean(para.text)
        if not text:
            continue
        match = re.match(r"Heading (\d)", style)
        level = 1 if style == "Title" else int(match.group(1)) if match else 0
        blocks.append(Block(text, min(level, 6)))
    for table in document.tables:
        for row in table.rows:
            cells = [_clean(c.text) for c in row.cells]
            if any(cells):
                blocks.append(Block(" | ".join(cells)))
    title = document.core_properties.title or next((b.text for b in blocks if b.level == 1), stem)
    return title, blocks
