"""`tinyarms presets`: install from a file and from a loopback HTTP server (directly and through
a proxy from the environment), sha256 pins, updates that change, `extends` by installed
name, and the refusals (secrets, paths in `extends`, invalid config)."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_tinyarms

TEAM = """# Our team's tinyarms: chat and edit on the shared vLLM.
extends = "default"

[preset]
description = "team vLLM"
version = "1.0"

[tiers.cloud-fast]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "qwen2.5-coder-32b"
api_key_env = "TEAM_VLLM_KEY"
"""


class PresetServer:
    """Serves files from a folder on 127.0.0.1; also answers as an HTTP proxy (absolute URLs)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer.requests.append(self.path)
                name = self.path.rsplit("/", 1)[-1]
                target = outer.folder / name
                if not target.is_file():
                    self.send_error(404)
                    return
                body = target.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/toml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> PresetServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[PresetServer]:
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "team.toml").write_text(TEAM)
    with PresetServer(folder) as server:
        yield server


@pytest.fixture
def cli_env(env: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in env.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    clean["NO_PROXY"] = "127.0.0.1,localhost"
    return clean


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def installed_dir(env: dict[str, str]) -> Path:
    return Path(env["XDG_DATA_HOME"]) / "tinyarms" / "presets"


def use_preset(env: dict[str, str], name: str) -> Path:
    user = Path(env["XDG_CONFIG_HOME"]) / "tinyarms" / "config.toml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text(f'extends = "{name}"\n')
    return user


def test_install_from_a_file_and_extend_it_by_name(cli_env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "team.toml"
    source.write_text(TEAM)
    done = run_tinyarms(cli_env, "presets", "install", str(source))
    assert done.returncode == 0, done.stderr
    assert sha(TEAM) in done.stdout  # the hash is printed, to pin it elsewhere
    assert (installed_dir(cli_env) / "team.toml").read_text() == TEAM

    listing = json.loads(run_tinyarms(cli_env, "presets", "list", "--json").stdout)
    team = next(p for p in listing if p["name"] == "team")
    assert team["installed"] and team["origin"] == str(source) and team["version"] == "1.0"
    assert next(p for p in listing if p["name"] == "default")["origin"] == "shipped"

    use_preset(cli_env, "team")
    shown = run_tinyarms(cli_env, "config", "show", "--explain", "--json")
    assert shown.returncode == 0, shown.stderr
    tier = json.loads(shown.stdout)["tiers"]["cloud-fast"]
    assert tier["model"]["value"] == "qwen2.5-coder-32b"
    assert tier["model"]["source"].startswith(f"preset team (installed from {source}, sha256 {sha(TEAM)[:12]}")
    # What `team` does not set still comes from the shipped preset it extends.
    assert tier["timeout_s"]["source"] == "built-in default"
    assert json.loads(shown.stdout)["tiers"]["cloud-strong"]["model"]["source"].startswith("preset default (")

    diff = run_tinyarms(cli_env, "presets", "diff", "team")
    assert '~ tiers.cloud-fast.model: "gpt-4o-mini" -> "qwen2.5-coder-32b"' in diff.stdout
    assert '~ tiers.cloud-fast.api_key_env: "OPENAI_API_KEY" -> "TEAM_VLLM_KEY"' in diff.stdout

    removed = run_tinyarms(cli_env, "presets", "remove", "team")
    assert removed.returncode == 0 and not (installed_dir(cli_env) / "team.toml").exists()
    broken = run_tinyarms(cli_env, "config", "show")
    assert broken.returncode == 1 and "unknown preset 'team'" in broken.stderr


def test_an_installed_preset_is_found_before_a_shipped_one(cli_env: dict[str, str], tmp_path: Path) -> None:
    mine = tmp_path / "local-only.toml"
    mine.write_text('extends = "base"\n\n[roles.autocomplete]\ntier = "local"\nmax_latency_ms = 250\n')
    done = run_tinyarms(cli_env, "presets", "install", str(mine))
    assert done.returncode == 0, done.stderr
    assert "shadows the shipped preset 'local-only'" in done.stdout
    use_preset(cli_env, "local-only")
    shown = json.loads(run_tinyarms(cli_env, "config", "show", "--explain", "--json").stdout)
    latency = shown["roles"]["autocomplete"]["max_latency_ms"]
    assert latency["value"] == 250 and "installed from" in latency["source"]


def test_install_from_http_with_a_pin_and_a_refused_changed_update(
    cli_env: dict[str, str], served: PresetServer
) -> None:
    url = f"{served.url}/team.toml"
    wrong = run_tinyarms(cli_env, "presets", "install", url, "--sha256", "0" * 64)
    assert wrong.returncode == 1 and "expected " + "0" * 64 in wrong.stderr
    assert not (installed_dir(cli_env) / "team.toml").exists()

    done = run_tinyarms(cli_env, "presets", "install", url, "--sha256", sha(TEAM))
    assert done.returncode == 0, done.stderr
    assert served.requests == ["/team.toml", "/team.toml"]

    same = run_tinyarms(cli_env, "presets", "update", "team")
    assert same.returncode == 0 and "up to date" in same.stdout

    changed = TEAM.replace("qwen2.5-coder-32b", "llama-3.3-70b")
    (served.folder / "team.toml").write_text(changed)
    refused = run_tinyarms(cli_env, "presets", "update", "team")
    assert refused.returncode == 1 and sha(changed) in refused.stderr and "nothing changed" in refused.stderr
    assert '-model = "qwen2.5-coder-32b"' in refused.stderr and '+model = "llama-3.3-70b"' in refused.stderr
    assert (installed_dir(cli_env) / "team.toml").read_text() == TEAM
    wrong_pin = run_tinyarms(cli_env, "presets", "update", "team", "--sha256", sha(TEAM))
    assert wrong_pin.returncode == 1 and (installed_dir(cli_env) / "team.toml").read_text() == TEAM

    accepted = run_tinyarms(cli_env, "presets", "update", "team", "--sha256", sha(changed))
    assert accepted.returncode == 0, accepted.stderr
    assert (installed_dir(cli_env) / "team.toml").read_text() == changed
    meta = json.loads((installed_dir(cli_env) / "team.json").read_text())
    assert meta["sha256"] == sha(changed) and meta["origin"] == url

    use_preset(cli_env, "team")
    shown = json.loads(run_tinyarms(cli_env, "config", "show", "--explain", "--json").stdout)
    source = shown["tiers"]["cloud-fast"]["model"]["source"]
    assert source.startswith(f"preset team (installed from {url}, sha256 {sha(changed)[:12]}")


def test_install_goes_through_the_proxy_from_the_environment(cli_env: dict[str, str], served: PresetServer) -> None:
    # The host does not exist; only the proxy (the loopback server) can answer for it.
    proxied = {**cli_env, "HTTP_PROXY": served.url, "NO_PROXY": ""}
    done = run_tinyarms(proxied, "presets", "install", "http://presets.example.invalid/team.toml")
    assert done.returncode == 0, done.stderr
    assert served.requests == ["http://presets.example.invalid/team.toml"]  # an absolute URL: a proxy request


def test_dead_url_is_reported_and_nothing_installed(cli_env: dict[str, str], served: PresetServer) -> None:
    missing = run_tinyarms(cli_env, "presets", "install", f"{served.url}/nope.toml")
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr
    dead = run_tinyarms(cli_env, "presets", "install", "http://127.0.0.1:9/team.toml")
    assert dead.returncode == 1 and "ConnectError" in dead.stderr
    assert not installed_dir(cli_env).exists() or not list(installed_dir(cli_env).iterdir())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('extends = "default"\n[tiers.cloud-fast]\nmodel = "m"\n# key: sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t\n', "API key"),
        ('extends = "default"\n[tiers.cloud-fast]\napi_key_env = "sk-ant-api03-Xy7zAb3cDe9fGh1jKl5mNo"\n', "API key"),
        ('extends = "default"\n[tiers.cloud-fast]\nmodel = "Zm9vYmFyQmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg"\n', "looks like"),
        ('extends = "default"\n[tiers.cloud-fast]\nbase_url = "https://me:hunter2@llm.example/v1"\n', "password"),
        ('extends = "../../etc/evil"\n', "by name only"),
        ('extends = "https://example.invalid/x.toml"\n', "by name only"),
        ('extends = "mine"\n', "its own name"),
        ('extends = "default"\n[roles.chat]\ntier = "nowhere"\n', "unknown tier 'nowhere'"),
        ('extends = "default"\n[tiers.local]\nprovder = "llama-cpp"\n', "did you mean 'provider'"),
        ('extends = "no-such-preset"\n', "unknown preset 'no-such-preset'"),
        ("this is = not toml [", "not valid TOML"),
    ],
)
def test_bad_presets_are_refused(cli_env: dict[str, str], tmp_path: Path, text: str, expected: str) -> None:
    source = tmp_path / "mine.toml"
    source.write_text(text)
    done = run_tinyarms(cli_env, "presets", "install", str(source))
    assert done.returncode == 1
    assert expected in done.stderr, done.stderr
    assert not (installed_dir(cli_env) / "mine.toml").exists()


def test_a_refused_secret_is_not_repeated(cli_env: dict[str, str], tmp_path: Path) -> None:
    key = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1w"
    source = tmp_path / "leak.toml"
    source.write_text(f'extends = "default"\n[tiers.cloud-fast]\nmodel = "{key}"\n')
    done = run_tinyarms(cli_env, "presets", "install", str(source))
    assert done.returncode == 1 and "API key" in done.stderr
    assert key not in done.stderr + done.stdout


def test_shipped_presets_cannot_be_removed_or_updated(cli_env: dict[str, str]) -> None:
    removed = run_tinyarms(cli_env, "presets", "remove", "default")
    assert removed.returncode == 1 and "shipped" in removed.stderr
    updated = run_tinyarms(cli_env, "presets", "update", "default")
    assert updated.returncode == 1 and "not an installed preset" in updated.stderr


def test_a_name_cannot_leave_the_presets_folder(cli_env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "team.toml"
    source.write_text(TEAM)
    for name in ("../evil", "/tmp/evil", "Evil", "a/b"):
        done = run_tinyarms(cli_env, "presets", "install", str(source), "--name", name)
        assert done.returncode == 1 and "not a preset name" in done.stderr, (name, done.stderr)
    assert not (installed_dir(cli_env).parent / "evil.toml").exists() and not Path("/tmp/evil.toml").exists()


def test_an_untrusted_workspace_cannot_choose_an_installed_preset(cli_env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "team.toml"
    source.write_text(TEAM)
    assert run_tinyarms(cli_env, "presets", "install", str(source)).returncode == 0
    repo = tmp_path / "cloned-repo"
    repo.mkdir()
    (repo / ".tinyarms.toml").write_text('extends = "team"\n')
    shown = run_tinyarms(cli_env, "config", "show", "--explain", "--json", "--workspace", str(repo))
    assert shown.returncode == 0, shown.stderr
    assert "ignored 'extends': the workspace is not trusted" in shown.stderr
    tier = json.loads(shown.stdout)["tiers"]["cloud-fast"]
    assert tier["base_url"]["value"] == "https://api.openai.com/v1"  # still the default preset's
