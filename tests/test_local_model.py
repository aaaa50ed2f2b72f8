"""LocalModel: one real llama.cpp model in a child process (SmolLM2-135M, the smallest)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tinyarms.autocomplete.engine import detect_template
from tinyarms.local_model import ChatPiece, LocalModel, LocalModelError, get_model

pytestmark = pytest.mark.asyncio(loop_scope="module")

SMOL = "embedded:smollm2-135m"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def smol() -> AsyncIterator[LocalModel]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINYARMS_ALLOW_CRASH", "1")  # inherited by the child: the crash test needs it
        model = get_model(SMOL, purpose="test", n_ctx=1024)
        await model.start()
    yield model
    await model.shutdown()


async def test_chat_streams_pieces_with_logprobs_and_usage(smol: LocalModel) -> None:
    assert get_model(SMOL, purpose="test", n_ctx=1024) is smol  # shared per (model, purpose, settings)
    await smol.start()  # idempotent
    pieces: list[ChatPiece] = []
    async for piece in smol.chat(
        [{"role": "user", "content": "What is the capital of France?"}], max_tokens=12, temperature=0.0
    ):
        pieces.append(piece)
    last = pieces[-1]
    assert last.done and last.usage is not None
    prompt_tokens, completion_tokens = last.usage
    assert prompt_tokens > 10 and 0 < completion_tokens <= 12
    text = "".join(p.text for p in pieces)
    assert text.strip(), text  # a 135M model's answer: real text, not necessarily right
    assert all(p.logprob is not None and p.logprob <= 0 for p in pieces[:-1])
    assert not any(p.done for p in pieces[:-1])


async def test_stop_strings_end_the_answer(smol: LocalModel) -> None:
    text = ""
    async for piece in smol.chat(
        [{"role": "user", "content": "Count from 1 to 10, separated by commas."}],
        max_tokens=40,
        temperature=0.0,
        stop=["5"],
    ):
        text += piece.text
    assert "5" not in text and "4" in text, text


async def test_cancelling_the_consumer_cancels_generation(smol: LocalModel) -> None:
    received: list[str] = []

    async def consume() -> None:
        async for piece in smol.chat(
            [{"role": "user", "content": "Write a long story about a dragon."}], max_tokens=400, temperature=0.7
        ):
            received.append(piece.text)

    task = asyncio.create_task(consume())
    while len(received) < 3:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The child stopped the story: the next request is answered, and the child is idle
    # again at once (a ping goes through the reader thread, a tokenize through the queue).
    tokens = await asyncio.wait_for(smol.tokenize("hello world"), timeout=30)
    assert tokens
    assert len(received) < 400


async def test_ipc_round_trip_and_templates_of_both_embedded_models(smol: LocalModel) -> None:
    assert 0 < await smol.ping() < 5
    assert (await detect_template(smol)).name == "prefix-only"
    gemma = get_model("embedded:gemma3-270m", purpose="test-template", n_ctx=512)
    await gemma.start()
    try:
        assert (await detect_template(gemma)).name == "prefix-only"  # no FIM tokens in its vocabulary
    finally:
        await gemma.shutdown()


async def test_a_native_crash_fails_requests_fast_and_the_child_restarts(smol: LocalModel) -> None:
    pid_before = smol._proc.pid if smol._proc else None
    with pytest.raises(LocalModelError, match="SIGSEGV"):
        await smol.crash()
    assert smol.crashes == 1 and smol.state in ("restarting", "loading", "ready")
    with pytest.raises(LocalModelError, match="not ready"):
        await smol.tokenize("x")
    deadline = asyncio.get_running_loop().time() + 60
    while not smol.ready:
        assert asyncio.get_running_loop().time() < deadline, smol.state
        await asyncio.sleep(0.05)
    assert smol._proc is not None and smol._proc.pid != pid_before
    pieces = [p async for p in smol.chat([{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0.0)]
    assert pieces[-1].done


async def test_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    model = LocalModel(str(tmp_path / "nope.gguf"), purpose="test")
    with pytest.raises(LocalModelError, match="model file not found"):
        await model.start()
    assert model.state == "failed"
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file")
    broken = LocalModel(str(bad), purpose="test")
    with pytest.raises(LocalModelError):
        await broken.start()
    await broken.shutdown()


async def answer(model: LocalModel, question: str, stop: list[str] | None = None) -> str:
    text = ""
    async for piece in model.chat([{"role": "user", "content": question}], max_tokens=24, temperature=0.0, stop=stop):
        text += piece.text
    return text


async def test_a_partial_stop_string_is_held_back_then_flushed(smol: LocalModel) -> None:
    question = "Count from 1 to 10, separated by commas."
    full = await answer(smol, question)
    assert len(full) > 8, full
    # A stop string whose start the answer contains but which never completes: nothing is lost.
    assert await answer(smol, question, stop=[full[3:7] + "\x00never"]) == full
    # One that completes: the answer ends just before it, with no part of it streamed.
    assert await answer(smol, question, stop=[full[3:7]]) == full[:3]


async def test_a_base_model_without_chat_template_answers_in_plain_text() -> None:
    gemma = get_model("embedded:gemma3-270m", purpose="test-chat", n_ctx=1024)
    await gemma.start()
    try:
        text = await answer(gemma, "What is a list comprehension in Python?")
    finally:
        await gemma.shutdown()
    # The embedded Gemma is a base model: a Q/A transcript, stopped before it writes the next entry.
    assert text.strip() and text == text.lstrip(), repr(text)
    assert "\nQ:" not in text and "\nA:" not in text, repr(text)
