"""app_run: a published app (the demo org's seeded "meeting-notes") run over many form
inputs as one job, composed by the apps service, every call through the pipeline."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Gateway
from tests.jobs.conftest import wait_job


def _run(items: list[dict[str, Any]], app: str = "meeting-notes") -> dict[str, Any]:
    return {"kind": "app_run", "input": {"app": app, "items": items}}


def test_app_runs_over_many_inputs(any_jobs_gateway: Gateway) -> None:
    gw = any_jobs_gateway
    items = [{"notes": f"We decided plan {i}."} for i in range(3)] + [{"notes": "Plan K.", "language": "Korean"}]
    with gw.client() as c:
        r = c.post("/api/jobs", json=_run(items))
        assert r.status_code == 202, r.text
        assert r.json()["app_id"]
        job = wait_job(c, r.json()["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["object"] == "app_run.result" and result["app"] == "meeting-notes"
    assert result["app_version"]["number"] >= 1 and result["succeeded"] == 4
    outputs = result["outputs"]
    assert [o["index"] for o in outputs] == [0, 1, 2, 3]
    for i in range(3):  # the echo model repeats the composed prompt: the form value reached it
        assert f"We decided plan {i}." in outputs[i]["output"]
        assert outputs[i]["inputs"]["language"] == "English"  # the form's default, filled in
    assert outputs[3]["inputs"]["language"] == "Korean"
    # composed by the app (its system prompt), pinned to its version, audited as a job of the app
    assert "Korean" in job["input"]["requests"][3]["messages"][0]["content"]
    detailed = [gw.log(x["id"]) for x in gw.logs() if x["entry_point"] == "job"]
    logs = [x for x in detailed if (x["client_request_id"] or "").startswith(f"job:{job['id']}:")]
    assert len(logs) == 4 and {x["app_id"] for x in logs} == {job["app_id"]}


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (_run([{"notes": "x"}], app="no-such-app"), "input.app", "No app"),
        (_run([{"notes": "x"}, {}]), "input.items[1].notes", "required"),
        (_run([{"notes": "x", "language": "Klingon"}]), "input.items[0].language", "language"),
        (_run([{"notes": "x", "colour": "red"}]), "input.items[0].colour", "colour"),
        (_run([]), "input.items", "at least 1"),
        ({"kind": "app_run", "input": {"items": [{"notes": "x"}]}}, "input.app", "Field required"),
    ],
)
def test_bad_app_run_input_is_a_422_naming_the_field(
    jobs_gateway: Gateway, body: dict[str, Any], param: str, words: str
) -> None:
    with jobs_gateway.client() as c:
        r = c.post("/api/jobs", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == param
    assert words in r.json()["error"]["message"]


def test_an_apps_own_key_runs_it_as_a_job_and_nothing_else(jobs_gateway: Gateway) -> None:
    from sqlalchemy import select

    from aiport.accounts.demo import DEMO_ADMIN_EMAIL
    from aiport.apps.keys import create_app_key
    from aiport.store.apps import App
    from aiport.store.models import User

    async def make() -> str:
        async with jobs_gateway.runtime.sessions() as s, s.begin():
            user = (await s.execute(select(User).where(User.email == DEMO_ADMIN_EMAIL))).scalar_one()
            app = (await s.execute(select(App).where(App.slug == "meeting-notes"))).scalar_one()
            return (await create_app_key(s, user, app, "batch runner")).secret

    with jobs_gateway.client(jobs_gateway.server.run(make())) as c:
        r = c.post("/api/jobs", json=_run([{"notes": "Ship on Friday."}]))
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["id"])
        assert job["status"] == "succeeded", job
        assert "Ship on Friday." in job["result"]["outputs"][0]["output"]
        other = c.post(
            "/api/jobs",
            json={
                "kind": "chat_batch",
                "input": {"requests": [{"model": "echo", "messages": [{"role": "user", "content": "x"}]}]},
            },
        )
        assert other.status_code == 422 and other.json()["error"]["param"] == "input.requests[0].model"
