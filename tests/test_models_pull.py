"""`tinyarms models pull` / `models list` against a real local HTTP server that speaks the
Hugging Face resolve endpoint (no network): a normal pull, a cut connection that resumes
with a Range request, a killed pull that a second run continues, and a corrupted download
that fails its check."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import run_tinyarms as tinyarms
from tinyarms.models import sources

SPEC = "hf:tiny-org/tiny-model/tiny.Q4_0.gguf"
SIZE = 3 * 1024 * 1024 + 12345  # a bit over 3 chunks of the 1 MiB pull chunk size
COMMIT = "a" * 40


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hub:
    """What the local hub serves and saw. LFS-style files answer HEAD/GET on resolve with a
    redirect to a CDN on another origin (another port), as the real hub does."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}  # "owner/repo/file" -> content
        self.lfs: set[str] = set()
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Range header
        self.cut_after: int | None = None  # the next body GET stops after this many bytes (once)
        self.stall_after: int | None = None  # the next body GET sends this much, then hangs
        self.release = threading.Event()
        self.corrupt = False  # flip one byte of every body (the headers keep the true sha256)
        self.url = ""
        self.cdn_url = ""


class HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: Hub) -> None:
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.hub = hub

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class HubHandler(BaseHTTPRequestHandler):
    server: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_HEAD(self) -> None:
        self.answer(body=False)

    def do_GET(self) -> None:
        self.answer(body=True)

    def answer(self, *, body: bool) -> None:
        hub = self.server.hub
        hub.requests.append((self.command, self.path, self.headers.get("Range")))
        if self.path.startswith("/cdn/"):
            name = self.path.removeprefix("/cdn/")
            self.send_content(hub.files[name], body=body)
            return
        parts = self.path.lstrip("/").split("/")  # owner/repo/resolve/revision/file...
        name = "/".join(parts[:2] + parts[4:])
        if len(parts) < 5 or parts[2] != "resolve" or name not in hub.files:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Error-Message", "Entry not found")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = hub.files[name]
        if name in hub.lfs:  # the hub redirects LFS files to a CDN and names their sha256
            self.send_response(302)
            self.send_header("Location", f"{hub.cdn_url}/cdn/{name}")
            self.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", f'"{git_blob_sha1(b"pointer")}"')
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_content(data, body=body, etag=git_blob_sha1(data))

    def send_content(self, data: bytes, *, body: bool, etag: str | None = None) -> None:
        hub = self.server.hub
        start = 0
        range_header = self.headers.get("Range")
        if range_header and range_header.startswith("bytes="):
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("X-Repo-Commit", COMMIT)
        if etag:
            self.send_header("ETag", f'"{etag}"')
        self.end_headers()
        if not body:
            return
        payload = bytearray(data[start:])
        if hub.corrupt:
            payload[len(payload) // 2] ^= 0xFF
        if hub.cut_after is not None:
            limit, hub.cut_after = hub.cut_after, None
            self.wfile.write(payload[:limit])
            self.wfile.flush()
            self.close_connection = True  # the body stops short: the client sees a cut connection
            return
        if hub.stall_after is not None:
            limit, hub.stall_after = hub.stall_after, None
            self.wfile.write(payload[:limit])
            self.wfile.flush()
            hub.release.wait(timeout=60)  # until the test has killed the client
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def hub() -> Iterator[Hub]:
    state = Hub()
    state.files["tiny-org/tiny-model/tiny.Q4_0.gguf"] = os.urandom(SIZE)
    state.lfs.add("tiny-org/tiny-model/tiny.Q4_0.gguf")
    state.files["tiny-org/tiny-model/config.json"] = b'{"model_type": "tiny"}\n'
    servers = [HubServer(state), HubServer(state)]
    state.url, state.cdn_url = servers[0].url, servers[1].url
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    state.release.set()
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def pull_env(env: dict[str, str], tmp_path: Path, hub: Hub, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """`env` with its own model cache, the local hub as HF_ENDPOINT, and the network allowed."""
    result = dict(env)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        result.pop(key, None)
    result.update(
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        HF_HOME=str(tmp_path / "hf-home"),
        HF_ENDPOINT=hub.url,
        HF_HUB_DOWNLOAD_TIMEOUT="20",
    )
    # The same cache for sources.resolve() in this process.
    monkeypatch.setenv("XDG_CACHE_HOME", result["XDG_CACHE_HOME"])
    return result


def body_gets(hub: Hub) -> list[tuple[str, str, str | None]]:
    return [r for r in hub.requests if r[0] == "GET" and r[1].startswith("/cdn/")]


def test_pull_downloads_checks_and_resolve_finds_it(pull_env: dict[str, str], hub: Hub) -> None:
    # TQDM_POSITION=-1 shows huggingface_hub's progress bar without a terminal.
    result = tinyarms({**pull_env, "TQDM_POSITION": "-1"}, "models", "pull", SPEC)
    assert result.returncode == 0, result.stderr
    data = hub.files["tiny-org/tiny-model/tiny.Q4_0.gguf"]
    path = sources.resolve(SPEC)
    assert path == sources.hf_cache_path(SPEC)
    assert path.read_bytes() == data
    assert f"sha256:{hashlib.sha256(data).hexdigest()} ok" in result.stdout
    assert "100%" in result.stderr  # huggingface_hub's progress bar
    resolve_url = "/tiny-org/tiny-model/resolve/main/tiny.Q4_0.gguf"
    assert ("HEAD", resolve_url, None) in hub.requests
    assert body_gets(hub) == [("GET", "/cdn/tiny-org/tiny-model/tiny.Q4_0.gguf", None)]
    assert not list(path.parent.glob("*.incomplete"))

    # A second pull checks the cached file and downloads nothing.
    again = tinyarms(pull_env, "models", "pull", SPEC)
    assert again.returncode == 0, again.stderr
    assert "already cached" in again.stdout
    assert len(body_gets(hub)) == 1


def test_small_git_file_is_checked_against_its_blob_sha1(pull_env: dict[str, str], hub: Hub) -> None:
    result = tinyarms(pull_env, "models", "pull", "hf:tiny-org/tiny-model/config.json")
    assert result.returncode == 0, result.stderr
    data = hub.files["tiny-org/tiny-model/config.json"]
    assert f"git-sha1:{git_blob_sha1(data)} ok" in result.stdout
    assert sources.resolve("hf:tiny-org/tiny-model/config.json").read_bytes() == data


def test_cut_connection_resumes_with_a_range_request(pull_env: dict[str, str], hub: Hub) -> None:
    hub.cut_after = 2 * 1024 * 1024 + 500  # two whole 1 MiB chunks reach the disk, then the cut
    result = tinyarms(pull_env, "models", "pull", SPEC)
    assert result.returncode == 0, result.stderr
    gets = body_gets(hub)
    assert len(gets) == 2
    assert gets[0][2] is None
    assert gets[1][2] == f"bytes={2 * 1024 * 1024}-"  # continued where the written data ends
    assert sources.resolve(SPEC).read_bytes() == hub.files["tiny-org/tiny-model/tiny.Q4_0.gguf"]


def test_killed_pull_is_continued_by_the_next_run(pull_env: dict[str, str], hub: Hub) -> None:
    hub.stall_after = 2 * 1024 * 1024 + 500
    process = subprocess.Popen(
        [sys.executable, "-m", "tinyarms", "models", "pull", SPEC],
        env=pull_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target = sources.hf_cache_path(SPEC)
    deadline = time.monotonic() + 60
    partial: list[Path] = []
    while time.monotonic() < deadline:
        partial = list(target.parent.glob("*.incomplete")) if target.parent.is_dir() else []
        if partial and partial[0].stat().st_size >= 2 * 1024 * 1024:
            break
        time.sleep(0.05)
    process.kill()  # an interruption nothing can clean up after
    process.wait(timeout=10)
    hub.release.set()
    assert partial and partial[0].stat().st_size == 2 * 1024 * 1024, "the first pull left no partial file"
    with pytest.raises(sources.ModelNotAvailable, match="models pull"):
        sources.resolve(SPEC)  # a partial file is never used

    listing = tinyarms(pull_env, "models", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    states = {entry["spec"]: entry["state"] for entry in json.loads(listing.stdout)}
    assert states[SPEC] == "partial"

    result = tinyarms(pull_env, "models", "pull", SPEC)
    assert result.returncode == 0, result.stderr
    assert "resumed at 2.0 MB" in result.stdout
    assert body_gets(hub)[-1][2] == f"bytes={2 * 1024 * 1024}-"
    assert sources.resolve(SPEC).read_bytes() == hub.files["tiny-org/tiny-model/tiny.Q4_0.gguf"]


def test_corrupted_download_fails_its_check_and_leaves_nothing(pull_env: dict[str, str], hub: Hub) -> None:
    hub.corrupt = True
    result = tinyarms(pull_env, "models", "pull", SPEC)
    assert result.returncode == 1
    assert "failed its check (sha256 mismatch" in result.stderr
    assert "the bad file was removed" in result.stderr
    target = sources.hf_cache_path(SPEC)
    assert not target.exists()
    assert not list(target.parent.glob("*.incomplete"))
    with pytest.raises(sources.ModelNotAvailable):
        sources.resolve(SPEC)


def test_clear_errors_for_a_missing_file_offline_mode_and_a_bad_spec(pull_env: dict[str, str]) -> None:
    missing = tinyarms(pull_env, "models", "pull", "hf:tiny-org/tiny-model/nope.gguf")
    assert missing.returncode == 1
    assert "no such file in tiny-org/tiny-model at main" in missing.stderr
    offline = tinyarms({**pull_env, "HF_HUB_OFFLINE": "1"}, "models", "pull", SPEC)
    assert offline.returncode == 1
    assert "HF_HUB_OFFLINE is set" in offline.stderr
    bad = tinyarms(pull_env, "models", "pull", "hf:only-owner")
    assert bad.returncode == 1
    assert "is not of the form hf:owner/repo/file.gguf" in bad.stderr
    assert "Traceback" not in missing.stderr + offline.stderr + bad.stderr


def test_list_shows_sizes_and_which_tier_uses_which_model(
    pull_env: dict[str, str], hub: Hub, user_config: Path
) -> None:
    assert tinyarms(pull_env, "models", "pull", SPEC).returncode == 0
    user_config.parent.mkdir(parents=True)
    user_config.write_text(
        f'[tiers.pulled]\nprovider = "llama-cpp"\nmodel = "{SPEC}"\n\n'
        '[tiers.missing]\nprovider = "llama-cpp"\nmodel = "hf:someone/else/other.gguf"\n\n'
        '[roles.chat]\ntier = "pulled"\n'
    )
    listing = tinyarms(pull_env, "models", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    entries = {entry["spec"]: entry for entry in json.loads(listing.stdout)}
    assert entries[SPEC]["state"] == "cached"
    assert entries[SPEC]["size"] == SIZE
    assert entries[SPEC]["tiers"] == ["pulled"]
    assert entries[SPEC]["roles"] == ["chat"]
    assert entries["embedded:gemma3-270m"]["tiers"] == ["local"]
    assert "autocomplete" in entries["embedded:gemma3-270m"]["roles"]
    assert entries["hf:someone/else/other.gguf"]["state"] == "missing"
    assert "tinyarms models pull hf:someone/else/other.gguf" in entries["hf:someone/else/other.gguf"]["note"]

    table = tinyarms(pull_env, "models", "list")
    assert table.returncode == 0, table.stderr
    line = next(line for line in table.stdout.splitlines() if line.startswith(SPEC))
    assert "3.0 MB" in line and "cached" in line and "pulled: chat" in line
