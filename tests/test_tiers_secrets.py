"""A key in the environment reaches the provider and nothing else: not logs (at -vv),
traces, stats, `config show`, exceptions and their tracebacks, the cache or the ledger."""

from __future__ import annotations

import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import SERVER_DIR
from faultserver import FaultServer
from tinyarms import tiers
from tinyarms.config.validate import validate

KEY = "sk-tinyarms-FAKE-7f3a9c1e5b2d"
KEY_VAR = "FAKE_CLOUD_KEY"


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as fault_server:
        yield fault_server


def user_config(url: str, first: str) -> str:
    return f"""
[tiers.a]
provider = "openai"
base_url = "{url}"
model = "{first}"
api_key_env = "{KEY_VAR}"
max_retries = 1

[tiers.b]
provider = "anthropic"
base_url = "{url}"
model = "badjson"
api_key_env = "{KEY_VAR}"

[tiers.c]
provider = "openai"
base_url = "{url}"
model = "cut"
api_key_env = "{KEY_VAR}"

[tiers.d]
provider = "anthropic"
base_url = "{url}"
model = "ok"
api_key_env = "{KEY_VAR}"
temperature = 0.0

[roles.chat]
tier = "a"
escalate_to = ["b", "c", "d"]

[reliability]
backoff_base_s = 0.01
"""


def every_file(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_key_never_leaves_the_request(server: FaultServer, env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, KEY_VAR: KEY, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(SERVER_DIR)}
    config_file = Path(env["XDG_CONFIG_HOME"]) / "tinyarms" / "config.toml"
    config_file.parent.mkdir(parents=True)
    outputs: list[str] = []

    def tinyarms(*args: str) -> subprocess.CompletedProcess[str]:
        run = subprocess.run(
            [sys.executable, "-m", "tinyarms", "-vv", *args], env=env, capture_output=True, text=True, timeout=120
        )
        outputs.extend([run.stdout, run.stderr])
        return run

    # Every failure path, then an answer: 500 (retried), bad JSON, a cut stream, then d answers.
    config_file.write_text(user_config(server.url, "500"))
    answered = tinyarms("ask", "hello", "--role", "chat")
    assert answered.returncode == 0, answered.stderr
    assert "answer restarted" in answered.stdout
    tinyarms("ask", "hello", "--role", "chat", "--json")  # a cache hit this time
    # Every tier failing (d is now a 500 too), in both output modes.
    config_file.write_text(user_config(server.url, "500").replace('model = "ok"', 'model = "500"'))
    failed = tinyarms("ask", "hello again", "--json")
    assert failed.returncode == 1 and "every tier of role 'chat' failed" in failed.stderr
    tinyarms("ask", "hello again")
    # The key under a variable that is not set: the message names the variable only.
    env_without = dict(env)
    del env_without[KEY_VAR]
    missing = subprocess.run(
        [sys.executable, "-m", "tinyarms", "ask", "x"], env=env_without, capture_output=True, text=True, timeout=60
    )
    assert KEY_VAR in missing.stderr and "Traceback" not in missing.stderr
    outputs.extend([missing.stdout, missing.stderr])
    for args in (["config", "show", "--explain"], ["config", "show", "--json"], ["stats", "--json"], ["stats"]):
        assert tinyarms(*args).returncode == 0

    assert all(entry["auth"] for entry in server.log)  # the key was sent where it belongs
    assert KEY not in "".join(outputs)
    home = Path(env["XDG_STATE_HOME"]).parent
    written = every_file(home) + every_file(tmp_path / "cache")
    assert KEY.encode() not in written
    assert (Path(env["XDG_STATE_HOME"]) / "tinyarms" / "trace.jsonl").stat().st_size > 0


async def test_exceptions_and_tracebacks_hold_no_key(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for kind in ("STATE", "DATA", "CACHE"):
        monkeypatch.setenv(f"XDG_{kind}_HOME", str(tmp_path / kind.lower()))
    monkeypatch.setenv(KEY_VAR, KEY)
    tiers.reset_cooldowns()
    data = {
        "tiers": {
            name: {"provider": provider, "base_url": server.url, "model": model, "api_key_env": KEY_VAR}
            for name, provider, model in [("a", "openai", "schema"), ("b", "anthropic", "500"), ("c", "openai", "slow")]
        },
        "roles": {"chat": {"tier": "a", "escalate_to": ["b", "c"]}},
        "reliability": {"deadline_s": 1.0},
    }
    config, problems = validate(data, {})
    assert config is not None, problems
    caplog.set_level("DEBUG")
    with pytest.raises(tiers.AllTiersFailed) as failed:
        await tiers.run_role(config, "chat", [{"role": "user", "content": "hi"}])
    await tiers.aclose()
    rendered = "".join(traceback.format_exception(failed.value)) + repr(failed.value) + str(failed.value.trace)
    assert "every tier of role 'chat' failed" in rendered
    assert KEY not in rendered and KEY not in caplog.text
