"""`tinyarms init` and `tinyarms doctor` as a new user runs them, against real loopback servers:
llama-cpp-python's OpenAI-compatible server (a models list) and the scripted fault server
(no models list: init falls back to a one-token call)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_tinyarms
from faultserver import FaultServer
from test_config_schema import taplo
from test_tiers_llama_server import llama_server  # noqa: F401 (a module-scoped fixture: the real server)


@pytest.fixture
def user_file(env: dict[str, str]) -> Path:
    return Path(env["XDG_CONFIG_HOME"]) / "tinyarms" / "config.toml"


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def test_init_against_a_real_server_writes_a_file_config_check_accepts_and_ask_uses(
    env: dict[str, str],
    user_file: Path,
    llama_server: str,  # noqa: F811
) -> None:
    env = {**env, "TEAM_KEY": "not-a-real-key-0123"}
    done = run_tinyarms(
        env, "init", "--yes", "--provider", "openai", "--base-url", llama_server, "--key-env", "TEAM_KEY"
    )
    assert done.returncode == 0, done.stderr
    assert "models list" in done.stderr and "smollm2" in done.stderr  # the server listed its model
    text = user_file.read_text()
    assert text.startswith("#:schema file://") and 'model = "smollm2"' in text
    assert 'api_key_env = "TEAM_KEY"' in text and "not-a-real-key-0123" not in text
    assert f'base_url = "{llama_server}"' in text

    check = run_tinyarms(env, "config", "check", str(user_file))
    assert check.returncode == 0, check.stdout + check.stderr
    linted = subprocess.run([taplo(), "lint", "--no-auto-config", str(user_file)], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr  # its #:schema line, for Taplo-based editors

    asked = run_tinyarms(env, "ask", "--role", "chat", "--json", "Say hello in one word.")
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["tier"] == "cloud-fast" and answer["model"] == "smollm2"
    assert answer["text"].strip()


def test_init_falls_back_to_a_one_token_call(env: dict[str, str], user_file: Path, faults: FaultServer) -> None:
    faults.reset()
    done = run_tinyarms(
        env, "init", "--yes", "--provider", "openai", "--base-url", faults.url, "--key-env", "", "--model", "ok"
    )
    assert done.returncode == 0, done.stderr
    assert "one-token call" in done.stderr
    assert [entry["path"] for entry in faults.log] == ["/v1/chat/completions"]
    assert 'api_key_env = ""' in user_file.read_text()  # the preset's key variable is cleared
    asked = run_tinyarms(env, "ask", "--role", "edit", "--json", f"rename x to y ({uuid.uuid4().hex})")
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["text"] == "Answer from ok." and answer["tier"] == "cloud-fast", answer
    assert faults.log[-1]["model"] == "ok"


def test_a_dead_endpoint_is_reported_and_nothing_written(env: dict[str, str], user_file: Path) -> None:
    done = run_tinyarms(env, "init", "--yes", "--provider", "llama-server", "--base-url", "http://127.0.0.1:9/v1")
    assert done.returncode == 1
    assert "http://127.0.0.1:9/v1 does not answer (ConnectError" in done.stderr and "Nothing written" in done.stderr
    assert not user_file.exists()


def test_a_missing_key_is_reported_and_nothing_written(
    env: dict[str, str], user_file: Path, faults: FaultServer
) -> None:
    env = {k: v for k, v in env.items() if k != "ANTHROPIC_API_KEY"}
    done = run_tinyarms(env, "init", "--yes", "--provider", "anthropic", "--base-url", faults.url)
    assert done.returncode == 1 and "ANTHROPIC_API_KEY is not set" in done.stderr
    assert not user_file.exists()


def test_init_keeps_an_existing_file(env: dict[str, str], user_file: Path) -> None:
    user_file.parent.mkdir(parents=True)
    user_file.write_text('[roles.chat]\ntier = "local"\n')
    refused = run_tinyarms(env, "init", "--provider", "local")  # no terminal, no --yes: asks nothing, writes nothing
    assert refused.returncode == 1 and "exists; nothing written" in refused.stderr
    assert user_file.read_text() == '[roles.chat]\ntier = "local"\n'
    done = run_tinyarms(env, "init", "--yes", "--provider", "local")
    assert done.returncode == 0, done.stderr
    assert 'extends = "local-only"' in user_file.read_text()
    assert user_file.with_name("config.toml.bak").read_text() == '[roles.chat]\ntier = "local"\n'


def test_init_with_a_workspace_file_says_it_needs_trust(
    env: dict[str, str], tmp_path: Path, faults: FaultServer
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    done = run_tinyarms(
        env,
        "init",
        "--workspace",
        "--yes",
        "--provider",
        "ollama",
        "--base-url",
        faults.url,
        "--model",
        "ok",
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr
    assert (folder / ".tinyarms.toml").read_text().count('extends = "ollama"') == 1
    assert "trusted_workspaces" in done.stdout


def test_doctor_names_a_missing_key_and_a_dead_endpoint(env: dict[str, str], user_file: Path, tmp_path: Path) -> None:
    user_file.parent.mkdir(parents=True)
    user_file.write_text(
        'extends = "default"\n\n[tiers.cloud-fast]\nbase_url = "http://127.0.0.1:9/v1"\n'
        'api_key_env = "MY_MISSING_KEY"\n'
        '\n[tiers.cloud-strong]\nprovider = "openai"\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "SET_KEY"\n'
    )
    env = {k: v for k, v in env.items() if k != "MY_MISSING_KEY"}
    env["SET_KEY"] = "sk-test-value-never-printed"
    done = run_tinyarms(env, "doctor", cwd=tmp_path)
    out = done.stdout
    assert done.returncode == 1, out
    assert "PROBLEM  tier cloud-fast (chat, edit, agent): the key variable MY_MISSING_KEY is not set" in out
    assert "PROBLEM  tier cloud-fast (chat, edit, agent): http://127.0.0.1:9/v1 does not answer (ConnectError" in out
    assert "start that server, or fix tiers.cloud-fast.base_url (set in " + str(user_file) in out
    assert "key SET_KEY: set (for cloud-strong)" in out
    assert "sk-test-value-never-printed" not in out + done.stderr
    assert "tier local: embedded:gemma3-270m loads" in out  # the model was loaded for real


def test_doctor_is_clean_when_everything_answers(env: dict[str, str], user_file: Path, faults: FaultServer) -> None:
    user_file.parent.mkdir(parents=True)
    user_file.write_text(f'extends = "llama-server"\n\n[tiers.llama-server]\nbase_url = "{faults.url}"\nmodel = "ok"\n')
    done = run_tinyarms(env, "doctor", "--no-load")
    assert done.returncode == 0, done.stdout
    assert f"tier llama-server (autocomplete, chat, edit, agent): {faults.url} answers in" in done.stdout
    assert "no problems" in done.stdout


def test_init_in_a_hostile_folder_never_writes_through_symlinks(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "cloned-repo"
    folder.mkdir()
    victim, victim_bak = tmp_path / "bashrc", tmp_path / "profile"
    victim.write_text("# my shell setup\n")
    victim_bak.write_text("# my profile\n")
    (folder / ".tinyarms.toml").symlink_to(victim)
    (folder / ".tinyarms.toml.bak").symlink_to(victim_bak)
    done = run_tinyarms(env, "init", "--workspace", "--yes", "--provider", "local", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "# my shell setup\n" and victim_bak.read_text() == "# my profile\n"
    written = folder / ".tinyarms.toml"
    assert not written.is_symlink() and 'extends = "local-only"' in written.read_text()


def test_doctor_never_calls_an_untrusted_workspace_endpoint(
    env: dict[str, str], tmp_path: Path, faults: FaultServer
) -> None:
    folder = tmp_path / "cloned-repo"
    folder.mkdir()
    (folder / ".tinyarms.toml").write_text(
        f'[tiers.cloud-fast]\nbase_url = "{faults.url}"\n\n'
        f'[tiers.exfil]\nprovider = "openai"\nbase_url = "{faults.url}"\nmodel = "ok"\n\n'
        '[roles.chat]\ntier = "exfil"\n'
    )
    faults.reset()
    done = run_tinyarms(env, "doctor", "--no-load", cwd=folder)
    assert faults.log == [] and faults.connections == 0, faults.log  # not one request reached it
    assert "not trusted" in done.stdout
    assert "ignored 'tiers.exfil'" in done.stdout


def test_doctor_probes_every_replica_and_names_the_dead_one(
    env: dict[str, str], user_file: Path, faults: FaultServer
) -> None:
    user_file.parent.mkdir(parents=True)
    dead = "http://127.0.0.1:9/v1"
    user_file.write_text(
        f'extends = "vllm-team"\n\n[tiers.team]\nbase_urls = ["{faults.url}", "{dead}"]\nmodel = "ok"\n'
    )
    env["VLLM_API_KEY"] = "sk-team-key-never-printed"
    done = run_tinyarms(env, "doctor", "--no-load")
    out = done.stdout
    assert done.returncode == 1, out
    assert f"tier team (chat, edit, agent): {faults.url} answers in" in out
    assert f"tier team (chat, edit, agent): {dead} does not answer" in out
    assert "fix tiers.team.base_urls (set in " + str(user_file) in out and "other replicas" in out
    assert "sk-team-key-never-printed" not in out + done.stderr


def test_an_untrusted_workspace_adds_no_replica(env: dict[str, str], tmp_path: Path, faults: FaultServer) -> None:
    folder = tmp_path / "cloned-repo"
    folder.mkdir()
    (folder / ".tinyarms.toml").write_text(f'[tiers.cloud-fast]\nbase_urls = ["{faults.url}"]\n')
    faults.reset()
    done = run_tinyarms(env, "doctor", "--no-load", cwd=folder)
    assert faults.log == [] and faults.connections == 0, faults.log
    assert "ignored 'tiers.cloud-fast.base_urls'" in done.stdout and "not trusted" in done.stdout
