"""A real OpenAI-compatible model server for tests: `python -m llama_cpp.server` serving an
embedded model on 127.0.0.1, one per test module (start it from a module-scoped fixture).

Gemma 3 270M is a base model: tests that want it to follow a request start it with the
`alpaca` transcript ("### Instruction: ... ### Response:"), a shape a base model has seen
often; with its own chat template it mostly echoes the prompt.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def llama_server(
    tmp_path_factory: pytest.TempPathFactory, model_name: str, alias: str, *extra: str
) -> Iterator[str]:
    """Serve `model_name` (e.g. `embedded:smollm2-135m`) as `alias`; yields the server's /v1 URL."""
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python's server extras are not installed")
    from tinyarms.models.sources import resolve

    model = resolve(model_name)
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", alias, *extra]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--verbose", "False"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
