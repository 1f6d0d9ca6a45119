"""The web UI in a real browser: log in, run a guided-form app while the answer streams,
stop a stream, find the run in the logs dashboard, open its raw JSON, filter, export CSV,
switch to Korean. Screenshots of the main pages go to test-artifacts/."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from tests.conftest import Gateway
from tests.e2e.conftest import login, shot

ANSWER = "#thread .msg.assistant:last-child"


def _wait_status(page: Any, statuses: tuple[str, ...], timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = page.get_attribute(ANSWER, "data-status")
        if status in statuses:
            return str(status)
        time.sleep(0.05)
    raise AssertionError(f"the answer never reached {statuses}")


def test_login_rejects_a_wrong_password_and_redirects_back(page: Any) -> None:
    page.goto("/ui/admin/logs")
    assert "/ui/login" in page.url
    page.get_by_label("Email").fill("admin@demo.aiport.local")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong email or password."
    shot(page, "01-login-error")


def test_run_guided_form_app_streams_then_appears_in_logs(page: Any, ui_gateway: Gateway) -> None:
    login(page)
    shot(page, "02-catalog")
    page.get_by_role("link", name="Story teller").click()
    page.get_by_label("Topic").fill("a brave turtle")
    page.get_by_label("Tone").select_option("formal")
    page.get_by_label("End with a moral").check()
    # optimistic: the turn and the skeleton are in the page synchronously on submit (< 100 ms)
    timing = page.evaluate(
        """() => { const t0 = performance.now(); document.getElementById('send').click();
        return { skeleton: !!document.querySelector('#thread .msg.assistant:last-child .skeleton'),
                 user: [...document.querySelectorAll('#thread .msg.user')].pop()?.textContent.trim(),
                 ms: performance.now() - t0 }; }"""
    )
    assert timing["skeleton"] and timing["ms"] < 100, timing
    assert "a brave turtle" in timing["user"]
    # the answer grows word by word: record distinct intermediate states while streaming
    states: list[str] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = page.get_attribute(ANSWER, "data-status")
        text = page.inner_text(f"{ANSWER} [data-md]").strip()
        if status == "streaming" and text and (not states or states[-1] != text):
            states.append(text)
            if len(states) == 3:
                shot(page, "03-app-streaming")
        if status not in ("pending", "streaming"):
            break
        time.sleep(0.15)
    assert len(states) >= 2, states
    assert all(states[i + 1].startswith(states[i].rstrip()) for i in range(len(states) - 1)), states
    assert _wait_status(page, ("complete",)) == "complete"
    final = page.inner_text(f"{ANSWER} [data-md]")
    assert final.startswith("w0 w1") and final.rstrip().endswith("w49")
    assert len(states[0]) < len(final)
    # the conversation is in the history, and the URL names it
    assert "?c=conv_" in page.url
    assert page.locator("#history li").count() == 1
    # process panel: model, tokens, request id (from the audit record)
    page.locator(f"{ANSWER} details.process summary").click()
    panel = page.locator(f"{ANSWER} .process-body")
    panel.locator("dl").wait_for()
    assert "slowstream" in panel.inner_text()
    tokens = int(panel.locator("[data-tokens]").inner_text())
    assert tokens > 0
    shot(page, "04-app-process")

    # the run in the logs dashboard, with the right user, app and tokens
    page.get_by_role("link", name="Logs").click()
    first = page.locator("#logs-table tbody tr").first
    assert first.locator("[data-col=user]").inner_text() == "Demo Admin"
    assert first.locator("[data-col=app]").inner_text() == "story-teller"
    assert int(first.locator("[data-col=tokens]").inner_text()) == tokens
    assert first.locator("[data-col=model]").inner_text() == "slowstream"
    shot(page, "05-logs")
    first.get_by_role("link").click()
    page.get_by_text("Request", exact=True).click()
    raw = page.locator("#raw-request pre")
    assert raw.is_visible()
    assert "a brave turtle" in raw.inner_text() and raw.locator(".j-key").count() > 0
    assert page.locator("[data-col=tokens]").inner_text().endswith(f"= {tokens}")
    shot(page, "06-log-detail")


def test_stop_a_stream(page: Any) -> None:
    login(page)
    page.goto("/ui/apps/story-teller")
    page.get_by_label("Topic").fill("a sleepy cat")
    page.get_by_role("button", name="Run").click()
    deadline = time.monotonic() + 10
    while "w3" not in page.inner_text(f"{ANSWER} [data-md]"):
        assert time.monotonic() < deadline, "no tokens arrived"
        time.sleep(0.05)
    page.get_by_role("button", name="Stop").click()
    assert _wait_status(page, ("stopped", "complete", "error")) == "stopped"
    text = page.inner_text(f"{ANSWER} [data-md]")
    assert "w49" not in text
    assert page.locator(f"{ANSWER} .badge").inner_text() == "Stopped"
    assert page.get_by_role("button", name="Stop").is_hidden()
    shot(page, "07-app-stopped")
    # after a reload the stored answer is the partial one, marked stopped
    page.reload()
    assert page.get_attribute(ANSWER, "data-status") == "stopped"


def test_filter_search_and_export_csv(page: Any, ui_gateway: Gateway) -> None:
    with ui_gateway.client() as c:  # a call from the API, by another model
        r = c.post(
            "/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "zebra report"}]}
        )
        assert r.status_code == 200
    ui_gateway.flush()
    login(page)
    page.goto("/ui/admin/logs")
    page.get_by_label("Model").select_option("echo")
    page.get_by_role("button", name="Filter").click()
    models = page.locator("#logs-table [data-col=model]").all_inner_texts()
    assert models and set(models) == {"echo"}
    page.get_by_label("Search").fill("zebra")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#logs-table tbody tr")
    assert rows.count() == 1
    assert "zebra report" in rows.first.inner_text()
    with page.expect_download() as info:
        page.get_by_role("link", name="Export CSV").click()
    text = open(info.value.path(), encoding="utf-8-sig").read()
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == 1 and table[0]["input"] == "zebra report" and table[0]["model"] == "echo"
    page.get_by_label("Search").fill("")
    page.get_by_label("Model").select_option("")
    page.get_by_label("App").select_option(label="story-teller")
    page.get_by_role("button", name="Filter").click()
    assert set(page.locator("#logs-table [data-col=app]").all_inner_texts()) == {"story-teller"}


def test_korean_and_the_admin_pages(page: Any, ui_gateway: Gateway) -> None:
    with ui_gateway.client() as c:
        body = {"model": "echo", "messages": [{"role": "user", "content": "for the charts"}]}
        assert c.post("/v1/chat/completions", json=body).status_code == 200
        job = {"kind": "chat_batch", "input": {"requests": [body]}}
        assert c.post("/api/jobs", json=job).status_code == 202
    ui_gateway.flush()
    login(page)
    page.goto("/ui/admin/jobs")
    assert "chat_batch" in page.locator("#jobs-table tbody").inner_text()
    page.goto("/ui/admin/usage")
    assert int(page.locator("#kpi-calls").inner_text()) >= 1
    assert page.locator(".chart svg").count() == 8
    shot(page, "08-usage")
    for name in ("people", "keys", "models", "quotas", "jobs"):
        page.goto(f"/ui/admin/{name}")
        shot(page, f"09-admin-{name}")
    page.goto("/ui/")
    page.get_by_role("link", name="한국어").click()
    page.wait_for_url("**/ui/")
    assert page.locator("html").get_attribute("lang") == "ko"
    assert page.get_by_role("heading", level=1).inner_text() == "내 앱"
    assert page.get_by_role("link", name="로그").is_visible()
    page.goto("/ui/apps/story-teller")
    assert page.get_by_role("button", name="실행").is_visible()
    shot(page, "10-app-korean")
    page.goto("/ui/admin/logs")
    assert page.get_by_role("heading", level=1).inner_text() == "로그 대시보드"
    shot(page, "11-logs-korean")


def test_keyset_pages_in_the_dashboard(page: Any, ui_gateway: Gateway) -> None:
    with ui_gateway.client() as c:
        for i in range(5):
            body = {"model": "echo", "messages": [{"role": "user", "content": f"page test {i}"}]}
            assert c.post("/v1/chat/completions", json=body).status_code == 200
    ui_gateway.flush()
    login(page)
    page.goto("/ui/admin/logs?q=page+test&per=2")
    seen: list[str] = []
    for expected in (2, 2, 1):
        ids = [r.get_attribute("data-log-id") for r in page.locator("#logs-table tbody tr").all()]
        assert len(ids) == expected
        seen += ids
        if expected == 2:
            page.get_by_role("link", name="Next page").click()
    assert len(set(seen)) == 5
    assert page.get_by_role("link", name="Next page").count() == 0
    inputs = [t for t in page.locator("#logs-table td.clip").all_inner_texts() if t.startswith("page test")]
    assert inputs == ["page test 0"]  # newest first: the last page holds the oldest call
    page.get_by_role("link", name="First page").click()
    assert page.locator("#logs-table tbody tr").count() == 2
