"""Uploads over HTTP on both databases: formats, limits (413/422), duplicates (409),
Korean full-text search, deletion."""

from __future__ import annotations

import secrets
from typing import Any

from tests.conftest import Gateway
from tests.knowledge.conftest import upload
from tests.knowledge.test_extract import make_docx, make_pdf


def _collection(c: Any) -> str:
    r = c.post("/api/knowledge/collections", json={"name": f"docs {secrets.token_hex(3)}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_every_format_is_searchable(any_kn_gateway: Gateway) -> None:
    with any_kn_gateway.client() as c:
        col = _collection(c)
        files = {
            "a.txt": b"The cafeteria opens at 7:30 and serves bibimbap on Tuesdays.",
            "b.md": b"# Parking\n\n## Permits\n\nParking permits are renewed every April.",
            "c.html": b"<h1>Gym</h1><p>The gym has a sauna on the fourth floor.</p>",
            "d.pdf": make_pdf("Shuttle", ["The airport shuttle leaves hourly from gate 3."]),
            "e.docx": make_docx(),
        }
        for name, data in files.items():
            r = upload(c, col, name, data)
            assert r.status_code == 201, (name, r.text)
            assert r.json()["chunks"] >= 1
        for query, title in (
            ("bibimbap cafeteria", "a"),
            ("parking permit renewal", "Parking"),
            ("sauna", "Gym"),
            ("airport shuttle gate", "Shuttle"),
            ("contract renews automatically", "Vendor Contract"),
        ):
            r = c.post("/api/knowledge/search", json={"query": query, "collection_ids": [col]})
            assert r.status_code == 200, r.text
            assert r.json()["data"][0]["title"] == title, (query, r.json()["data"][:1])


def test_korean_text_is_searchable(any_kn_gateway: Gateway) -> None:
    with any_kn_gateway.client() as c:
        col = _collection(c)
        body = "# 휴가 규정\n\n## 연차\n\n1년 이상 근무한 직원은 연 15일의 연차를 사용할 수 있습니다.\n\n## 병가\n\n병가는 연 10일까지 유급입니다."
        assert upload(c, col, "leave.md", body.encode()).status_code == 201
        assert upload(c, col, "other.md", "# 식당\n\n구내식당은 7시에 엽니다.".encode()).status_code == 201
        r = c.post("/api/knowledge/search", json={"query": "연차는 며칠이야?", "collection_ids": [col]})
        top = r.json()["data"][0]
        assert top["title"] == "휴가 규정" and top["heading"] == "휴가 규정 > 연차" and "15일" in top["text"]
        r = c.post("/api/knowledge/search", json={"query": "병가를", "collection_ids": [col]})  # with a particle
        assert r.json()["data"][0]["heading"] == "휴가 규정 > 병가"


def test_limits_duplicates_and_bad_files(any_kn_gateway: Gateway) -> None:
    with any_kn_gateway.client() as c:
        col = _collection(c)
        r = upload(c, col, "big.txt", b"x " * 150_000)  # limit: 200 kB in the test settings
        assert r.status_code == 413 and r.json()["error"]["param"] == "file"
        r = upload(c, col, "long.txt", ("word " * 21_000).encode())  # 105k chars > 100k
        assert r.status_code == 422 and r.json()["error"]["code"] == "document_too_long"
        r = upload(c, col, "pic.png", b"\x89PNG")
        assert r.status_code == 422 and r.json()["error"]["param"] == "filename"
        r = upload(c, col, "broken.pdf", b"%PDF-1.7 nonsense")
        assert r.status_code == 422 and r.json()["error"]["code"] == "unreadable_document"
        first = upload(c, col, "one.txt", b"Same text twice.")
        assert first.status_code == 201
        dup = upload(c, col, "two.txt", b"Same text twice.")
        assert dup.status_code == 409 and dup.headers["x-aiport-duplicate-of"] == first.json()["id"]
        listed = c.get(f"/api/knowledge/collections/{col}").json()
        assert [d["filename"] for d in listed["data"]] == ["one.txt"]  # nothing half-written
        # deleting a document removes it from search
        assert c.delete(f"/api/knowledge/documents/{first.json()['id']}").status_code == 200
        r = c.post("/api/knowledge/search", json={"query": "same text", "collection_ids": [col]})
        assert r.json()["data"] == []
        r = c.post("/api/knowledge/search", json={"query": "x", "mode": "hybrid", "collection_ids": [col]})
        assert r.status_code == 422 and r.json()["error"]["param"] == "mode"  # embeddings are off here


def test_sharing_rules(any_kn_gateway: Gateway) -> None:
    with any_kn_gateway.client() as c:
        r = c.post("/api/knowledge/collections", json={"name": "t", "visibility": "team"})
        assert r.status_code == 422 and r.json()["error"]["param"] == "team_id"
        r = c.post("/api/knowledge/collections", json={"name": "", "visibility": "org"})
        assert r.status_code == 422


def test_ask_back_and_resume_on_both_databases(any_kn_gateway: Gateway) -> None:
    with any_kn_gateway.client() as c:
        col = _collection(c)
        for name in ("Acme", "Globex"):
            body = f"# Vendor Contract - {name}\n\n## Term\n\nThe {name} contract renews every year.".encode()
            assert upload(c, col, f"{name}.md", body).status_code == 201
        r = c.post("/api/knowledge/ask", json={"message": "계약서 요약해줘", "model": "echo", "collection_ids": [col]})
        clar = r.json()["clarification"]
        assert [ch["label"].split(" (")[0] for ch in clar["choices"][:2]] == [
            "Vendor Contract - Globex",
            "Vendor Contract - Acme",
        ]
        assert c.get(f"/api/knowledge/clarifications/{clar['id']}").json()["resolved_at"] is None
        bad = c.post(f"/api/knowledge/clarifications/{clar['id']}/resolve", json={"choice": "c9"})
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "choice"
        other = clar["choices"][-1]["id"]
        bad = c.post(f"/api/knowledge/clarifications/{clar['id']}/resolve", json={"choice": other})
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "text"
        r = c.post(f"/api/knowledge/clarifications/{clar['id']}/resolve", json={"choice": "c2"})
        answer = r.json()
        assert answer["citations"][0]["title"] == "Vendor Contract - Acme"
        stored = c.get(f"/api/knowledge/clarifications/{clar['id']}").json()
        assert stored["resolved_request_id"] == answer["request_id"] and stored["resolved_choice"]["id"] == "c2"


def test_candidates_scored_by_what_the_message_describes(any_kn_gateway: Gateway) -> None:
    with any_kn_gateway.client() as c:
        col = _collection(c)
        docs = {
            "Q3 Sales Report": "Revenue grew. Churn among small customers rose to 3.1 percent after the price change.",
            "Q3 Marketing Report": "The webinar series brought 1,900 sign-ups at 12 dollars per lead.",
            "Hiring Report": "We hired 14 engineers; time to offer fell to 21 days.",
        }
        for title, text in docs.items():
            assert upload(c, col, f"{title}.md", f"# {title}\n\n{text}".encode()).status_code == 201

        def ask(message: str) -> dict[str, Any]:
            r = c.post("/api/knowledge/ask", json={"message": message, "model": "echo", "collection_ids": [col]})
            assert r.status_code == 200, r.text
            return r.json()  # type: ignore[no-any-return]

        about_churn = ask("Summarize the report about churn")
        assert about_churn["object"] == "knowledge.answer"
        assert {x["title"] for x in about_churn["citations"]} == {"Q3 Sales Report"}
        assert ask("이탈률에 대한 보고서 요약해줘")["object"] == "clarification"  # no Korean word to go by
        vague = ask("Summarize the report")["clarification"]
        assert len(vague["choices"]) == 4  # three reports + something else
        q3 = ask("Summarize the Q3 report")["clarification"]  # both Q3 titles match: ask, don't guess by length
        assert {ch["label"].split(" (")[0] for ch in q3["choices"][:-1]} == {"Q3 Sales Report", "Q3 Marketing Report"}
