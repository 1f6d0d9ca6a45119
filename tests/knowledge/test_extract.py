"""Extraction per format with the real parsers, structure-aware chunking, Korean terms."""

from __future__ import annotations

import io

import docx
import pytest
from fpdf import FPDF

from aiport.domain.errors import Unprocessable
from aiport.knowledge.analyze import query_terms, terms
from aiport.knowledge.chunking import chunk_blocks
from aiport.knowledge.extract import Block, extract


def make_pdf(title: str, paragraphs: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_title(title)
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    for p in paragraphs:
        pdf.multi_cell(0, 8, p)
        pdf.ln(8)
    return bytes(pdf.output())


def make_docx() -> bytes:
    d = docx.Document()
    d.add_heading("Vendor Contract", level=1)
    d.add_heading("Term", level=2)
    d.add_paragraph("The contract runs for two years and renews automatically.")
    table = d.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Fee"
    table.rows[0].cells[1].text = "1,200 dollars per month"
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def test_markdown_headings_paragraphs_and_tables() -> None:
    doc = extract(b"# Guide\n\nIntro.\n\n## Setup\n\n- step one\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", "g.md")
    assert doc.title == "Guide" and doc.media_type == "text/markdown"
    assert Block("Setup", 2) in doc.blocks and Block("step one") in doc.blocks and Block("1 | 2") in doc.blocks


def test_html_skips_scripts_and_keeps_headings() -> None:
    html = b"<html><head><title>Policy</title><script>var x=1</script></head><body><h1>Leave</h1><p>Fifteen days.</p><p>Second&nbsp;para</p></body></html>"
    doc = extract(html, "p.html")
    assert doc.title == "Policy"
    assert doc.blocks == [Block("Leave", 1), Block("Fifteen days."), Block("Second para")]


def test_pdf_with_pypdf() -> None:
    doc = extract(make_pdf("Quarterly Report", ["Revenue grew 18 percent.", "Churn rose to 3 percent."]), "r.pdf")
    assert doc.title == "Quarterly Report" and "Revenue grew 18 percent." in doc.text


def test_docx_styles_become_headings() -> None:
    doc = extract(make_docx(), "c.docx")
    assert Block("Vendor Contract", 1) in doc.blocks and Block("Term", 2) in doc.blocks
    assert Block("Fee | 1,200 dollars per month") in doc.blocks


def test_plain_text_in_cp949_is_decoded() -> None:
    doc = extract("연차 휴가는 15일입니다.\n\n병가는 10일입니다.".encode("cp949"), "leave.txt")
    assert [b.text for b in doc.blocks] == ["연차 휴가는 15일입니다.", "병가는 10일입니다."]


@pytest.mark.parametrize(
    ("data", "name", "code"),
    [
        (b"hello", "image.png", "unsupported_document"),
        (b"%PDF-1.4 garbage", "broken.pdf", "unreadable_document"),
        (b"not a zip", "broken.docx", "unreadable_document"),
        (b"\n\n  \n", "blank.txt", "empty_document"),
    ],
)
def test_bad_files_are_422_with_a_reason(data: bytes, name: str, code: str) -> None:
    with pytest.raises(Unprocessable) as err:
        extract(data, name)
    assert err.value.code == code and err.value.param in ("file", "filename")


def test_chunks_follow_headings_and_split_long_paragraphs() -> None:
    long = " ".join(f"Sentence number {i} is here." for i in range(200))
    blocks = [Block("Report", 1), Block("Intro."), Block("Results", 2), Block(long), Block("Risks", 2), Block("Few.")]
    chunks = chunk_blocks(blocks, max_chars=500)
    assert chunks[0].heading == "Report" and chunks[0].text == "Intro."
    results = [c for c in chunks if c.heading == "Report > Results"]
    assert len(results) > 5 and all(len(c.text) <= 500 for c in results)
    assert all(c.text.endswith(".") for c in results)  # split at sentence ends
    assert chunks[-1].heading == "Report > Risks" and chunks[-1].text == "Few."
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_korean_terms_are_bigrams_so_particles_do_not_matter() -> None:
    assert set(terms("보고서")) <= set(terms("보고서를 요약해줘"))
    assert terms("회의") == ["회의"] and terms("팀") == ["팀"]
    assert terms("The reports were uploaded") == ["report", "upload"]
    assert query_terms("보고서 보고서 report reports") == ["보고", "고서", "report"]
