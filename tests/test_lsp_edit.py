"""`tinyarms.edit` end to end: the real server over stdio applies checked edits through the client.

The client here (`lsp_editing.Editor`) applies `workspace/applyEdit` as an editor does and
rejects an edit for a version it no longer has. One test runs the real embedded model behind
`python -m llama_cpp.server`; the answers a small model will not give on demand (a clean
one-line change, prose in a fence, broken syntax, nothing) are scripted on the fault server.
"""

from __future__ import annotations

import ast
import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types

from conftest import CLIENTS, start_client
from faultserver import FaultServer
from lsp_editing import Editor, Session, apply_text_edits, execute, start_session, write_config
from model_server import llama_server
from test_lsp_router import as_code_action
from tinyarms.edits import languages

pytestmark = pytest.mark.asyncio(loop_scope="module")

MODEL_TIMEOUT_S = 600

MODULE = '''\
"""Shapes."""

import math


def area(width, height):
    total = width * height
    return total


def circle(radius):
    return math.pi * radius ** 2
'''
AREA = {"start": {"line": 5, "character": 0}, "end": {"line": 8, "character": 0}}  # the three lines of area()
AREA_NEW = "def area(width, height):\n    total = width * height\n    return round(total, 2)\n"


@pytest.fixture(scope="module")
def http() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture(scope="module")
def model_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from llama_server(tmp_path_factory, "embedded:gemma3-270m", "gemma3", "--chat_format", "alpaca")


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=CLIENTS)
async def session(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, http: FaultServer
) -> AsyncIterator[Session]:
    session = await start_session(str(request.param), tmp_path_factory, http.url, "scripted")
    (session.workspace / "tests").mkdir()
    yield session
    await session.lsp.shutdown_session()


async def edit(session: Session, uri: str, instruction: str, http: FaultServer, scripted: str,
               **extra: Any) -> Any:  # fmt: skip
    """Run tinyarms.edit on area() with the model's next answer scripted."""
    http.script("scripted", [{"text": scripted}])
    argument = {"uri": uri, "range": AREA, "instruction": instruction, "version": session.editor.version(uri)}
    return await execute(session.lsp, "tinyarms.edit", {**argument, **extra})


def one_sentence(reason: str) -> bool:
    return reason.endswith(".") and ". " not in reason.rstrip(".")


async def test_a_clean_answer_is_applied_as_the_changed_line_only(session: Session, http: FaultServer) -> None:
    uri = session.editor.open(session.workspace / "shapes_ok.py", MODULE)
    answer = f"Here is the updated function:\n\n```python\n{AREA_NEW}```\n\nIt rounds the result to two places."
    result = await edit(session, uri, "round the result to 2 places", http, answer)
    print("scripted edit:", json.dumps(result, indent=2))
    assert result["applied"] is True, result
    [request] = session.editor.requests[-1:]
    assert request.label == "tinyarms: round the result to 2 places"
    [change] = request.edit.document_changes  # type: ignore[misc]
    assert change.text_document.version == 1  # the client refuses it if it moved on
    [text_edit] = change.edits
    assert text_edit.range.start.line == 7 and text_edit.range.end == types.Position(8, 0)
    after = session.editor.text(uri)
    assert after == MODULE.replace("    return total\n", "    return round(total, 2)\n")
    ast.parse(after)
    assert session.editor.version(uri) == 2
    assert "-    return total\n+    return round(total, 2)\n" in result["diff"]
    assert result["diff"].startswith("--- a/shapes_ok.py\n+++ b/shapes_ok.py\n")
    assert result["decision"]["role"] == "edit" and result["decision"]["tier"] == "team"
    # What the model was asked: the lines, labelled, and the instruction.
    asked = http.log[-1]["messages"][-1]["content"]
    assert "shapes_ok.py (lines 6-8, Python)" in asked and "round the result to 2 places" in asked


async def test_preview_returns_the_diff_and_the_edit_and_applies_nothing(session: Session, http: FaultServer) -> None:
    uri = session.editor.open(session.workspace / "shapes_preview.py", MODULE)
    before = len(session.editor.requests)
    result = await edit(session, uri, "/refactor", http, f"```python\n{AREA_NEW}```", preview=True)
    assert set(result) == {"diff", "edit", "decision", "trace"} and result["decision"]["route"] == "refactor"
    assert len(session.editor.requests) == before and session.editor.text(uri) == MODULE
    [change] = result["edit"]["documentChanges"]
    assert change["textDocument"] == {"uri": uri, "version": 1}
    edits = [types.TextEdit(types.Range(types.Position(**e["range"]["start"]), types.Position(**e["range"]["end"])),
                            e["newText"]) for e in change["edits"]]  # fmt: skip
    assert apply_text_edits(MODULE, edits) == MODULE.replace("return total\n", "return round(total, 2)\n")
    # The editor accepts or rejects the preview itself; the result's trace id lets it say which.
    trace_id = result["trace"]["id"]
    recorded = await execute(session.lsp, "tinyarms.feedback", {"trace_id": trace_id, "outcome": "rejected"})
    assert recorded == {"recorded": True, "trace_id": trace_id, "correction": False}
    trace = Path(session.env["XDG_STATE_HOME"]) / "tinyarms" / "trace.jsonl"
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    assert any(r.get("id") == trace_id and r.get("role") == "edit" for r in lines), lines[-3:]
    assert {"kind": "feedback", "trace_id": trace_id, "outcome": "rejected"}.items() <= lines[-1].items(), lines[-1]


@pytest.mark.parametrize(
    "answer, words",
    [
        ("```\nI would rather not change this function, it looks fine to me.\n```", "words instead of code"),
        ("```python\ndef area(width, height):\n    total = width * (height\n    return total\n```", "syntax"),
        ("", "answered with no text"),
        ("```python\ndef area(width, height):\n    total = width * height\n", "cut off"),
        ("```python\ndef area(width, height):\n    total = width * height\n    return total\n```", "same as"),
    ],
    ids=["prose-in-fences", "broken-syntax", "empty", "cut-off", "unchanged"],
)
async def test_a_malformed_answer_leaves_the_file_untouched(
    session: Session, http: FaultServer, answer: str, words: str
) -> None:
    uri = session.editor.open(session.workspace / "shapes_bad.py", MODULE)
    before = len(session.editor.requests)
    result = await edit(session, uri, "/fix", http, answer)
    assert result["applied"] is False and words in result["refused"], result
    assert one_sentence(result["refused"]), result["refused"]
    assert result["decision"]["route"] == "fix"
    assert len(session.editor.requests) == before and session.editor.text(uri) == MODULE
    assert (session.workspace / "shapes_bad.py").read_text() == MODULE


async def test_a_stale_version_is_refused_before_the_model_is_asked(session: Session, http: FaultServer) -> None:
    uri = session.editor.open(session.workspace / "shapes_stale.py", MODULE)
    session.editor.type(uri, MODULE + "\n# typed meanwhile\n")
    asked = len(http.log)
    result = await execute(session.lsp, "tinyarms.edit",
                           {"uri": uri, "range": AREA, "instruction": "/refactor", "version": 1})  # fmt: skip
    assert result["applied"] is False and "changed since" in result["refused"]
    assert "version 1, now 2" in result["refused"]
    assert one_sentence(result["refused"])
    assert len(http.log) == asked  # no model call for an edit that cannot apply
    assert session.editor.text(uri).endswith("# typed meanwhile\n")


TS = """\
export function total(prices: number[]): number {
  let sum = 0;
  for (const price of prices) {
    sum += price;
  }
  return sum;
}
"""
RUST = """\
pub fn total(prices: &[u32]) -> u32 {
    let mut sum = 0;
    for price in prices {
        sum += price;
    }
    sum
}
"""


@pytest.mark.parametrize(
    "name, source, broken, language",
    [
        ("total.ts", TS, "let sum = 0;\nfor (const price of prices {\n  sum += price;\n}\n", "typescript"),
        ("total.rs", RUST, "let mut sum = 0;\nfor price in prices {\n    sum += price;\n\n", "rust"),
    ],
)
async def test_an_edit_that_breaks_typescript_or_rust_is_refused_by_tree_sitter(
    session: Session, http: FaultServer, name: str, source: str, broken: str, language: str
) -> None:
    assert languages.for_path(name).problem(source) is None
    uri = session.editor.open(session.workspace / name, source, language=language)
    http.script("scripted", [{"text": f"```{language}\n{broken}```"}])
    body = {"start": {"line": 1, "character": 0}, "end": {"line": 5, "character": 0}}
    result = await execute(session.lsp, "tinyarms.edit", {"uri": uri, "range": body, "instruction": "simplify",
                                                          "version": 1})  # fmt: skip
    assert result["applied"] is False and "syntax" in result["refused"] and name in result["refused"], result
    assert session.editor.text(uri) == source


async def test_write_tests_creates_a_new_file_and_never_overwrites(session: Session, http: FaultServer) -> None:
    source = session.workspace / "geometry.py"
    uri = session.editor.open(source, MODULE)
    tests_file = session.workspace / "tests" / "test_geometry.py"
    first = "```python\nfrom geometry import area\n\n\ndef test_area():\n    assert area(2, 3) == 6\n```"
    result = await edit(session, uri, "/test", http, first)
    assert result["applied"] is True, result
    [create, content] = session.editor.requests[-1].edit.document_changes  # type: ignore[misc]
    assert isinstance(create, types.CreateFile) and create.uri == tests_file.as_uri()
    assert create.options.overwrite is False and create.options.ignore_if_exists is False
    assert tests_file.read_text() == "from geometry import area\n\n\ndef test_area():\n    assert area(2, 3) == 6\n"
    assert session.editor.text(uri) == MODULE  # the source is not touched
    asked = http.log[-1]["messages"][-1]["content"]
    assert "tests/test_geometry.py" in asked and "`geometry`" in asked and "def area" in asked

    # Again: the file exists now, so it is never created again, and what it holds is kept.
    second = "```python\nfrom geometry import circle\n\n\ndef test_circle():\n    assert circle(1) > 3\n```"
    result = await edit(session, uri, "/test", http, second)
    assert result["applied"] is True, result
    assert not any(isinstance(c, types.CreateFile) for c in session.editor.requests[-1].edit.document_changes or [])
    text = tests_file.read_text()
    assert text.startswith("from geometry import area\n\n\ndef test_area():\n    assert area(2, 3) == 6\n")
    assert text.endswith("def test_circle():\n    assert circle(1) > 3\n")
    ast.parse(text)


async def test_edit_code_actions_carry_the_version(session: Session) -> None:
    uri = session.editor.open(session.workspace / "shapes_actions.py", MODULE)
    selection = types.Range(types.Position(5, 0), types.Position(8, 0))
    diagnostic = types.Diagnostic(range=types.Range(types.Position(6, 4), types.Position(6, 9)),
                                  message="'total' is a poor name", source="lint")  # fmt: skip
    actions = await session.lsp.text_document_code_action_async(
        types.CodeActionParams(types.TextDocumentIdentifier(uri), selection,
                               types.CodeActionContext(diagnostics=[diagnostic]))  # fmt: skip
    )
    commands = {a.title: as_code_action(a)["command"] for a in actions or []}
    for title, slash in (("Refactor", "/refactor"), ("Fix", "/fix"), ("Document", "/document"),
                         ("Write tests", "/test")):  # fmt: skip
        command = commands[f"tinyarms: {title}"]
        assert command["command"] == "tinyarms.edit"
        assert command["arguments"][0]["instruction"] == slash and command["arguments"][0]["version"] == 1


async def test_fix_sends_the_diagnostics_in_the_range(session: Session, http: FaultServer) -> None:
    uri = session.editor.open(session.workspace / "shapes_diag.py", MODULE)
    diagnostic = types.Diagnostic(range=types.Range(types.Position(6, 4), types.Position(6, 9)),
                                  message="'total' shadows nothing but is vague", source="lint")  # fmt: skip
    await session.lsp.text_document_code_action_async(
        types.CodeActionParams(types.TextDocumentIdentifier(uri), types.Range(types.Position(5, 0),
                               types.Position(8, 0)), types.CodeActionContext(diagnostics=[diagnostic]))  # fmt: skip
    )
    result = await edit(session, uri, "/fix", http, f"```python\n{AREA_NEW}```", preview=True)
    assert "diff" in result
    assert "line 7: error: 'total' shadows nothing but is vague [lint]" in http.log[-1]["messages"][-1]["content"]


async def test_a_real_model_edit_goes_through_the_checks(
    model_url: str, user_config: Path, env: dict[str, str], workspace: Path
) -> None:
    """Gemma 3 270M on the whole path. Whatever it answers, the file is either changed in the
    changed lines only and still parses, or left as it was with a one-sentence reason."""
    write_config(user_config, model_url, "gemma3", max_tokens=96)
    lsp = await start_client("neovim", workspace, env)
    try:
        editor = Editor(lsp)
        uri = editor.open(workspace / "shapes.py", MODULE)
        result = await asyncio.wait_for(
            execute(lsp, "tinyarms.edit", {"uri": uri, "range": AREA, "version": 1,
                                           "instruction": "Rename the variable total to product."}),
            MODEL_TIMEOUT_S,
        )  # fmt: skip
        print("real edit:", json.dumps(result, indent=2))
        assert result["decision"].get("model") == "gemma3" and result["decision"]["tier"] == "team", result
        after = editor.text(uri)
        if result["applied"]:
            ast.parse(after)
            [change] = editor.requests[-1].edit.document_changes  # type: ignore[misc]
            before_lines, after_lines = MODULE.splitlines(keepends=True), after.splitlines(keepends=True)
            for text_edit in change.edits:
                assert 5 <= text_edit.range.start.line <= text_edit.range.end.line <= 8  # inside the range
            unchanged = [i for i in range(5) if before_lines[i] == after_lines[i]]
            assert unchanged == list(range(5))
        else:
            assert one_sentence(result["refused"]) and after == MODULE and not editor.requests
    finally:
        await lsp.shutdown_session()


async def test_write_tests_never_follows_a_tests_folder_out_of_the_workspace(
    session: Session, http: FaultServer, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (session.workspace / "tests" / "test_linked_mod.py").symlink_to(outside / "stolen.py")
    uri = session.editor.open(session.workspace / "linked_mod.py", MODULE)
    asked = len(http.log)
    result = await edit(session, uri, "/test", http, "```python\ndef test_x():\n    pass\n```")
    assert result["applied"] is False and "leads out of the workspace" in result["refused"], result
    assert not (outside / "stolen.py").exists() and len(http.log) == asked
    http.script("scripted", [])  # the scripted answer was not used


async def test_a_file_outside_the_workspace_is_never_read_or_edited(
    session: Session, http: FaultServer, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.py"
    outside.write_text("TOKEN = 'outside'\n")
    asked = len(http.log)
    for command, argument in (
        ("tinyarms.edit", {"uri": outside.as_uri(), "range": AREA, "instruction": "/refactor"}),
        ("tinyarms.chat", {"text": "/explain", "uri": outside.as_uri(), "range": AREA}),
    ):
        with pytest.raises(Exception, match="nothing was read"):
            await execute(session.lsp, command, argument)
    assert len(http.log) == asked and outside.read_text() == "TOKEN = 'outside'\n"
