"""The CLI as a user runs it: separate processes on a fresh data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openai

from tests.conftest import write_catalog
from tests.support.servers import ServerThread, free_port

AIPORT = str(Path(sys.executable).parent / "aiport")


def run(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([AIPORT, *args], capture_output=True, text=True, env=env, timeout=120)
    if ok:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def env_for(tmp: Path, catalog: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "AIPORT_DATA_DIR": str(tmp)}
    env.pop("AIPORT_DATABASE_URL", None)
    if catalog:
        env["AIPORT_CONFIG"] = str(catalog)
    return env


def test_seed_keys_and_logs(tmp_path: Path, fake_upstream) -> None:
    env = env_for(tmp_path, write_catalog(tmp_path / "m.yaml", fake_upstream.url))
    assert "up to date" in run(env, "migrate").stdout
    key_file = tmp_path / "key"
    run(env, "seed-demo", "--key-file", str(key_file))
    key = key_file.read_text().strip()
    assert key.startswith("aip_") and oct(key_file.stat().st_mode)[-3:] == "600"
    assert "exists" in run(env, "seed-demo", "--key-file", str(tmp_path / "k2")).stdout  # idempotent

    member_key = run(env, "keys", "create", "--email", "mina@demo.aiport.local", "--name", "mina laptop").stdout.strip()
    assert member_key.startswith("aip_")
    listing = run(env, "keys", "list").stdout
    assert "mina@demo.aiport.local" in listing and member_key not in listing and member_key[:12] in listing
    assert run(env, "keys", "create", "--email", "nobody@x", ok=False).returncode == 1

    # serve in-process on the same data dir and make a call, then read it back with `aiport logs`
    from aiport.config import Settings
    from aiport.web.app import create_app

    settings = Settings(data_dir=tmp_path, AIPORT_CONFIG=tmp_path / "m.yaml", audit_flush_interval=0.05)
    with ServerThread(create_app(settings), port=free_port()) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=member_key, max_retries=0)
        client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "from the cli test"}])
        server.run(server.config.app.state.runtime.audit.flush())
    table = run(env, "logs").stdout
    assert "mina@demo.aiport.local" in table and "echo: from the cli test" in table
    records = [json.loads(line) for line in run(env, "logs", "--json", "--limit", "5").stdout.splitlines()]
    assert (
        records[0]["user_email"] == "mina@demo.aiport.local" and records[0]["output_text"] == "echo: from the cli test"
    )
    assert run(env, "logs", "--user", "nobody@x").stdout.strip() == "no audit records yet"

    key_id = next(line.split()[0] for line in run(env, "keys", "list").stdout.splitlines() if "mina laptop" in line)
    assert "revoked" in run(env, "keys", "revoke", key_id).stdout
    assert "revoked" in next(line for line in run(env, "keys", "list").stdout.splitlines() if key_id in line)
    assert run(env, "keys", "revoke", "key_missing", ok=False).returncode == 1


def test_models_lists_default_catalog(tmp_path: Path) -> None:
    out = run(env_for(tmp_path), "models").stdout
    assert "gemma-3-270m" in out and "provider=local" in out


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: {x: {kind: nope}}\nmodels: []\n")
    result = run(env_for(tmp_path, bad), "models", ok=False)
    assert result.returncode == 2 and "configuration error" in result.stderr and "kind" in result.stderr
    missing = run(env_for(tmp_path, tmp_path / "missing.yaml"), "models", ok=False)
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_quotas_and_limits_from_the_shell_bind_the_gateway(tmp_path: Path, fake_upstream) -> None:
    env = env_for(tmp_path, write_catalog(tmp_path / "m.yaml", fake_upstream.url))
    run(env, "seed-demo", "--key-file", str(tmp_path / "key"))
    member_key = run(env, "keys", "create", "--email", "mina@demo.aiport.local").stdout.strip()

    created = run(env, "quotas", "set", "user", "mina@demo.aiport.local", "--limit", "5", "--period", "day").stdout
    assert created.startswith("created quota") and "5 tokens per day" in created
    again = run(env, "quotas", "set", "user", "mina@demo.aiport.local", "--limit", "6").stdout
    assert again.startswith("updated quota")
    assert "6 tokens per day" in run(env, "quotas", "list").stdout
    assert "created rate limit" in run(env, "limits", "set", "team", "support", "--rpm", "100").stdout
    assert "support" not in run(env, "limits", "list").stdout  # stored as the team id, shown by id
    assert "100 req/min" in run(env, "limits", "list").stdout

    # bad rules are refused with the reason and change nothing
    for args, reason in [
        (("quotas", "set", "planet", "x", "--limit", "5"), "scope"),
        (("quotas", "set", "user", "nobody@x", "--limit", "5"), "no user 'nobody@x'"),
        (("quotas", "set", "org", "--limit", "5", "--period", "rolling"), "rolling_seconds"),
        (("quotas", "set", "org", "--limit", "-1"), "limit"),
        (("limits", "set", "model", "no-such-model", "--rpm", "5"), "No model 'no-such-model'"),
        (("limits", "set", "team", "support"), "give rpm, tpm or both"),
    ]:
        result = run(env, *args, ok=False)
        assert result.returncode == 1 and reason in result.stderr, (args, result.stderr)
    assert run(env, "quotas", "list").stdout.count("\n") == 1

    from aiport.config import Settings
    from aiport.web.app import create_app

    settings = Settings(data_dir=tmp_path, AIPORT_CONFIG=tmp_path / "m.yaml", audit_flush_interval=0.05)
    with ServerThread(create_app(settings), port=free_port()) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=member_key, max_retries=0)
        try:
            client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "a long question"}])
            raise AssertionError("the 6-token quota should refuse this request")
        except openai.RateLimitError as exc:
            assert "quota" in str(exc).lower()

    quota_id = run(env, "quotas", "list").stdout.split()[0]
    assert "deleted quota" in run(env, "quotas", "delete", quota_id).stdout
    assert run(env, "quotas", "list").stdout.strip() == "no quotas"
    assert run(env, "quotas", "delete", quota_id, ok=False).returncode == 1
