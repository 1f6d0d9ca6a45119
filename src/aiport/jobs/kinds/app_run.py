"""app_run: a published app run over many form inputs, in the background.

At submit time each item is checked against the app's form and composed into its
messages by the apps service's own compose stage (the same functions a run from the web
UI uses), pinned to the version published at that moment. The job then answers them like
a chat batch, every call carrying the app and version for quotas and the audit log.
Importing this module needs aiport.apps; without it the kind is simply not registered.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from aiport.accounts.authz import Action, load_actor
from aiport.apps.compose import build_request, compose_messages, first_turn, render_prompts, resolve_model
from aiport.apps.forms import validate_inputs
from aiport.apps.registry import load_app, published
from aiport.apps.runs import run_principal
from aiport.domain.errors import GatewayError, NotFound, Unprocessable
from aiport.jobs.context import JobContext
from aiport.jobs.kinds.chat_batch import answer_each, total_usage
from aiport.jobs.registry import JobKind, SubmitEnv

MAX_ITEMS = 1000


class AppRunInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    app: Annotated[str, Field(min_length=1, max_length=64, description="the app's slug")]
    items: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_ITEMS)] = Field(
        description="form values, one object per run (as the app's form takes them)"
    )
    concurrency: int = Field(4, ge=1, le=16, description="how many runs at once")


def _item_error(i: int, exc: GatewayError) -> Unprocessable:
    field = (exc.param or "").removeprefix("inputs.").removeprefix("inputs")
    param = f"input.items[{i}].{field}" if field else f"input.items[{i}]"
    message = exc.message.replace(f"'{exc.param}'", f"'{param}'") if exc.param else exc.message
    return Unprocessable(f"input.items[{i}]: {message}", param=param, code=exc.code)


async def prepare(raw: Any, env: SubmitEnv) -> dict[str, Any]:
    body = AppRunInput.model_validate(raw)
    async with env.sessions() as session:
        actor = await load_actor(session, env.principal)
        try:
            loaded = await load_app(session, actor, body.app, Action.APP_RUN)
            version, defn = await published(session, loaded.app)
        except NotFound as exc:
            raise Unprocessable(f"input.app: {exc.message}", param="input.app", code=exc.code) from exc
    principal = run_principal(actor)
    try:
        model = resolve_model(defn.model, env.router, principal)
    except GatewayError as exc:
        raise Unprocessable(f"input.app: {exc.message}", param="input.app", code=exc.code) from exc
    requests = []
    for i, item in enumerate(body.items):
        try:
            values = validate_inputs(defn, item)
            system, prompt = render_prompts(defn, values, env.max_prompt_chars)
            messages = compose_messages(system, [{"role": "user", "content": first_turn(prompt, None)}])
            request = build_request(
                defn,
                messages,
                model=model,
                app_id=loaded.app.id,
                app_version_id=version.id,
                entry_point="job",
                stream=False,
            )
            env.router.resolve(request, principal)  # the route stage's checks, with the run's rights
        except GatewayError as exc:
            raise _item_error(i, exc) from exc
        requests.append(
            {
                "model": request.model,
                "messages": request.messages,
                "params": request.params,
                "app_id": loaded.app.id,
                "app_version_id": version.id,
                "inputs": values,
            }
        )
    return {
        "app": loaded.app.slug,
        "app_id": loaded.app.id,
        "app_version": {"id": version.id, "number": version.number},
        "requests": requests,
        "concurrency": body.concurrency,
    }


async def run(ctx: JobContext, data: dict[str, Any]) -> dict[str, Any]:
    responses = await answer_each(ctx, data["requests"], int(data.get("concurrency", 4)))
    outputs = []
    for item, r in zip(data["requests"], responses, strict=True):
        out: dict[str, Any] = {"index": r["index"], "status": r["status"], "inputs": item["inputs"]}
        if r["status"] == "ok":
            out["output"] = r["response"]["choices"][0]["message"]["content"]
            out["model"] = r["response"]["model"]
        else:
            out["error"] = r["error"]
        outputs.append(out)
    failed = sum(1 for o in outputs if o["status"] != "ok")
    return {
        "object": "app_run.result",
        "app": data["app"],
        "app_version": data["app_version"],
        "outputs": outputs,
        "succeeded": len(outputs) - failed,
        "failed": failed,
        "usage": total_usage(responses),
    }


KIND = JobKind(
    name="app_run",
    description="Run a published app over many form inputs; outputs keep the input order.",
    input_model=AppRunInput,
    prepare=prepare,
    run=run,
)
