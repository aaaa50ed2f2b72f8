"""Prefill at a new place (`tinyarms/cursorMoved`, an edit far from the last prompt) over
LSP with the real embedded model, for both client presets: the first completion where the
cursor settled reuses the evaluated prompt, a cursor moving on starts nothing until it
rests, `prefill_on_cursor = false` turns it off, and a keystroke during that prefill is
answered (the child drops the prefill for it).

What is asserted is what the server reports (its prefill counters, the prompt tokens the
model evaluated), never time: speed is in scripts/bench_autocomplete.py.
One server per client preset for the module.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types

from conftest import CLIENTS
from test_autocomplete_context import Session, start_session
from test_autocomplete_lsp import model_status, open_doc

pytestmark = pytest.mark.asyncio(loop_scope="module")

# A generous budget (the answer is the whole line); no context block: the window alone.
SETTINGS = {"roles": {"autocomplete": {"max_latency_ms": 60000, "context": False}}}
SOURCE = Path(textwrap.__file__).read_text(encoding="utf-8")  # real code the project did not write
LINES = SOURCE.split("\n")


def place(line: int) -> types.Position:
    """The end of `line` of SOURCE (a place with code above it: a cold window of ~170 tokens)."""
    return types.Position(line=line, character=len(LINES[line]))


def move(session: Session, uri: str, position: types.Position) -> None:
    session.lsp.protocol.notify(
        "tinyarms/cursorMoved",
        {"textDocument": {"uri": uri}, "position": {"line": position.line, "character": position.character}},
    )


async def until(session: Session, check: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        state = await model_status(session.lsp)
        if check(state):
            return state
        assert asyncio.get_running_loop().time() < deadline, (state.get("prefill"), state.get("counts"))
        await asyncio.sleep(0.02)


def counts(state: dict[str, Any]) -> dict[str, int]:
    return dict(state.get("counts") or {})


def cursor(state: dict[str, Any]) -> dict[str, int]:
    return dict((state.get("prefill") or {}).get("cursor") or {})


def idle(state: dict[str, Any]) -> bool:
    """No generation, no prefill under way, no cursor waiting to settle."""
    c = counts(state)
    finished = c.get("prefill_done", 0) + c.get("prefill_preempted", 0) + c.get("prefill_error", 0)
    return not state.get("running") and finished + c.get("prefill_superseded", 0) >= c.get("prefill_started", 0)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=CLIENTS)
async def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Session]:
    started = await start_session(str(request.param), tmp_path_factory, SETTINGS)
    yield started
    await started.lsp.shutdown_session()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def document(session: Session) -> str:
    path = session.workspace / "wrap.py"
    path.write_text(SOURCE)
    uri = open_doc(session.lsp, path, SOURCE)
    await until(session, idle)
    return uri


async def test_the_first_completion_where_the_cursor_settled_is_warm(session: Session, document: str) -> None:
    before = await until(session, idle)
    target = place(300)
    move(session, document, target)
    state = await until(session, lambda s: cursor(s).get("settled", 0) > cursor(before).get("settled", 0) and idle(s))
    assert counts(state).get("prefill_done", 0) == counts(before).get("prefill_done", 0) + 1, state
    last = state["prefill"]["last"]
    assert not last["preempted"] and last["evaluated"] > 100, last  # a whole cold window, evaluated ahead

    suggestion, _ = await session.complete(document, target)
    generation = (await model_status(session.lsp))["last_generation"]
    # The completion evaluated at most the token it heals and the last one: the rest was cached.
    assert generation["prompt_tokens"] > 100 and generation["evaluated_tokens"] <= 2, generation


async def test_a_moving_cursor_prefills_once_it_rests_and_not_where_it_is_warm(
    session: Session, document: str
) -> None:
    before = await until(session, idle)
    for line in range(100, 112):  # a held arrow key: one notification per line
        move(session, document, place(line))
        await asyncio.sleep(0.01)
    state = await until(session, lambda s: cursor(s).get("settled", 0) > cursor(before).get("settled", 0) and idle(s))
    assert cursor(state)["superseded"] - cursor(before).get("superseded", 0) == 11, cursor(state)
    assert cursor(state)["settled"] == cursor(before).get("settled", 0) + 1
    assert counts(state)["prefill_started"] == counts(before).get("prefill_started", 0) + 1, counts(state)

    # One character to the left of where it rests: that prompt is evaluated already.
    here = place(111)
    move(session, document, types.Position(line=here.line, character=max(0, here.character - 1)))
    warm = await until(session, lambda s: cursor(s)["settled"] > cursor(state)["settled"] and idle(s))
    assert counts(warm).get("prefill_skipped_warm", 0) == counts(state).get("prefill_skipped_warm", 0) + 1
    assert counts(warm)["prefill_started"] == counts(state)["prefill_started"], counts(warm)

    # An edit far from that window is a new place too (no notification needed).
    far = place(40)
    session.lsp.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=document, version=2),
            content_changes=[types.TextDocumentContentChangePartial(range=types.Range(far, far), text=" ")],
        )
    )
    edited = await until(session, lambda s: cursor(s)["settled"] > cursor(warm)["settled"] and idle(s))
    assert cursor(edited)["far_edit"] == cursor(warm).get("far_edit", 0) + 1
    assert counts(edited)["prefill_started"] == counts(warm)["prefill_started"] + 1, counts(edited)


async def test_a_keystroke_during_a_cursor_prefill_is_answered(session: Session, document: str) -> None:
    before = await until(session, idle)
    move(session, document, place(200))
    await until(
        session, lambda s: counts(s).get("prefill_started", 0) > counts(before).get("prefill_started", 0), timeout=30
    )
    # The user types elsewhere (a cold place) while that prefill runs.
    suggestion, _ = await session.complete(document, place(420))
    assert suggestion.strip(), suggestion
    state = await until(session, idle)
    assert counts(state).get("prefill_preempted", 0) == counts(before).get("prefill_preempted", 0) + 1, counts(state)


async def test_prefill_on_cursor_off_starts_nothing(session: Session, document: str) -> None:
    off = {**SETTINGS["roles"]["autocomplete"], "prefill_on_cursor": False}
    session.lsp.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"tinyarms": {"roles": {"autocomplete": off}}})
    )
    before = await until(session, lambda s: s["prefill"]["on_cursor"] is False and idle(s))
    move(session, document, place(250))
    state = await until(session, lambda s: cursor(s).get("off", 0) > cursor(before).get("off", 0))
    await asyncio.sleep(0.5)  # past the settle time: nothing may start
    state = await until(session, idle)
    assert counts(state).get("prefill_started", 0) == counts(before).get("prefill_started", 0), counts(state)
    assert cursor(state).get("settled", 0) == cursor(before).get("settled", 0)

    # Bad params are logged and ignored: the server still answers.
    session.lsp.protocol.notify("tinyarms/cursorMoved", {"textDocument": {"uri": document}, "position": "here"})
    assert (await model_status(session.lsp))["state"] == "ready"
