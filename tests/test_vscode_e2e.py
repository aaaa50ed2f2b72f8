"""The VS Code extension in a real VS Code (code-server) in a real browser (Debian's Chromium).

vscode-client/e2e/run.mjs drives the editor with playwright-core and prints one JSON line;
this test runs it and asserts on that. It needs `scripts/setup_vscode_e2e.sh` (run by
scripts/test.sh); without it the test fails and says so, it never skips.

TINYARMS_E2E_SERVER_PATH, when set, replaces the repo's server/ on the language server's
PYTHONPATH (to try the extension against another branch's server work in progress).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, SERVER_DIR, acceptance_counts
from faultserver import FaultServer

CLIENT = REPO / "vscode-client"
CACHE = Path(os.environ.get("TINYARMS_E2E_CACHE") or Path.home() / ".cache" / "tinyarms-e2e")
VSIX = CLIENT / "tinyarms.vsix"
BUDGET_S = 600  # the runner's own bound on every wait; the subprocess gets a margin on top
SETUP_HINT = "run ./scripts/setup_vscode_e2e.sh first (scripts/test.sh does)"


def check_setup() -> None:
    needed = {
        "Node 24": CACHE / "node" / "bin" / "node",
        "code-server": CACHE / "code-server",
        "the packaged extension": VSIX,
        "playwright-core": CLIENT / "node_modules" / "playwright-core",
        "Chromium": Path("/usr/bin/chromium"),
    }
    missing = [f"{what} ({path})" for what, path in needed.items() if not path.exists()]
    if missing:
        pytest.fail(f"real-editor test setup missing: {', '.join(missing)}; {SETUP_HINT}", pytrace=False)
    vsix = VSIX.stat().st_mtime
    sources = [p for d in ("src", "media") for p in (CLIENT / d).rglob("*") if p.is_file()] + [CLIENT / "package.json"]
    stale = [str(p.relative_to(REPO)) for p in sources if p.stat().st_mtime > vsix]
    if stale:
        pytest.fail(f"the packaged extension is older than {', '.join(stale)}; {SETUP_HINT}", pytrace=False)


def tail(path: str, lines: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({exc})"


def e2e_env() -> dict[str, str]:
    """Like conftest's `env`, for a module-scoped run; the runner isolates XDG_* itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINYARMS_")}
    pythonpath = os.pathsep.join([str(SERVER_DIR), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(PYTHONPATH=pythonpath, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


# The edit and agent roles answer from the fault server (a 270M model will not produce a given
# edit or tool call on demand; the server's own tests run those on the real model). Chat and
# completions run on the embedded model.
EDIT_ANSWER = '''```python
def count_words(text):
    """Return the number of whitespace-separated words in text."""
    return len(text.split())
```'''
TODO = "# TODO\n\n- [ ] count the words\n- [ ] print the total\n"  # as e2e/run.mjs writes it
AGENT_TURNS = [
    {"tool_calls": [{"name": "read_file", "arguments": {"path": "TODO.md"}}]},
    {"tool_calls": [{"name": "edit_file", "arguments": {"path": "TODO.md", "start_line": 3, "end_line": 3,
                                                       "content": "- [x] count the words"}}]},
    {"text": "Marked the first task in TODO.md as done."},
]  # fmt: skip


def server_offers(command: str) -> bool:
    """Whether the server the editor runs has `command` (protocol.py lists every command name)."""
    server = Path(os.environ.get("TINYARMS_E2E_SERVER_PATH") or SERVER_DIR)
    return f'"{command}"' in (server / "tinyarms" / "protocol.py").read_text()


def require_command(command: str) -> None:
    if not server_offers(command):
        pytest.skip(f"the server does not offer {command} yet (its server branch is not merged into this one)")


@pytest.fixture(scope="module")
def http() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture(scope="module")
def editor(tmp_path_factory: pytest.TempPathFactory, http: FaultServer) -> dict[str, Any]:
    http.script("vscode-edit", [{"text": EDIT_ANSWER}])
    http.script("vscode-agent", AGENT_TURNS)
    return run_editor(tmp_path_factory, http)


def run_editor(tmp_path_factory: pytest.TempPathFactory, http: FaultServer) -> dict[str, Any]:
    """One editor session for the whole module (a few minutes once set up); its JSON result."""
    check_setup()
    tmp_path = tmp_path_factory.mktemp("vscode-e2e")
    work = tmp_path / "e2e"
    work.mkdir()
    artifacts = Path(os.environ.get("TINYARMS_E2E_ARTIFACTS") or tmp_path / "screenshots")
    env = e2e_env()
    server_path = os.environ.get("TINYARMS_E2E_SERVER_PATH") or env["PYTHONPATH"]
    run_env = dict(
        env,
        E2E_CACHE=str(CACHE),
        E2E_WORKDIR=str(work),
        E2E_PYTHON=sys.executable,
        E2E_VSIX=str(VSIX),
        E2E_PYTHONPATH=server_path,
        E2E_ARTIFACTS=str(artifacts),
        E2E_TIMEOUT_S=str(BUDGET_S),
        E2E_SCRIPT_URL=http.url,
    )
    node = str(CACHE / "node" / "bin" / "node")
    proc = subprocess.Popen(
        [node, "e2e/run.mjs"],
        cwd=CLIENT,
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=BUDGET_S + 90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"e2e runner hung past {BUDGET_S + 90} s; its log:\n{err[-4000:]}")
    sys.stderr.write(err)  # the runner's step log, shown by pytest on failure
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"e2e runner printed no result (exit {proc.returncode}):\n{out[-2000:]}\n{err[-4000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "result.json").write_text(json.dumps(result, indent=2))
    print(f"\ne2e result: {artifacts / 'result.json'}")
    print("screenshots:\n  " + "\n  ".join(result.get("screenshots", [])))
    print(f"timings (ms): {json.dumps(result.get('timings_ms'))}")
    if result.get("error"):
        pytest.fail(f"the editor or the server never got ready: {result['error']}\n{logs(result)}", pytrace=False)
    return result


def logs(result: dict[str, Any]) -> str:
    paths = result.get("logs", {})
    details = [f"--- tinyarms log: {path}\n{tail(path)}" for path in paths.get("tinyarms", [])]
    if paths.get("code_server"):
        details.append(f"--- code-server: {paths['code_server']}\n{tail(paths['code_server'], 20)}")
    return "\n".join(details)


def step(result: dict[str, Any], name: str, key: str) -> Any:
    """The result of one step, or a failure with that step's error and the logs."""
    if error := result["errors"].get(name):
        pytest.fail(f"step {name} failed: {error}\n{logs(result)}", pytrace=False)
    assert result[key] is not None, f"step {name} did not run"
    return result[key]


def test_settings_reach_the_server_as_editor_settings(editor: dict[str, Any]) -> None:
    # tinyarms.roles.chat.tier from settings.json, in tinyarms.showConfig's explained TOML.
    config = step(editor, "config", "config")
    assert re.match(r'tier = "local"\s+# editor settings', config["editor_settings_line"]), config["text"]


def test_ghost_text_from_the_embedded_model_and_tab_accepts_it(editor: dict[str, Any]) -> None:
    ghost = step(editor, "completions", "ghost")
    assert ghost["cold"]["ghost_inline"].strip() or ghost["cold"]["ghost_lines"], ghost["cold"]
    for sample in ghost["warm"]:
        assert sample["ghost_inline"].strip() or sample["ghost_lines"], sample
        assert sample["keystroke_to_ghost_ms"] is not None, sample
    print(
        "keystroke to ghost text (ms): "
        + ", ".join(str(s["keystroke_to_ghost_ms"]) for s in ghost["warm"])
        + f"; median {ghost['keystroke_to_ghost_median_ms']}; first (model loading) "
        + f"{ghost['cold']['since_typing_done_ms']} after typing"
    )
    # Tab accepted it: the saved file holds the typed text followed by the ghost text.
    # (New ghost text may show right after: the continuation of a partial suggestion.)
    accepted = editor["accepted"]
    assert accepted["line_found"], accepted


def test_explain_selection_is_routed(editor: dict[str, Any]) -> None:
    # The status bar names the route and tier; the answer document ends with the decision.
    explain = step(editor, "explain", "explain")
    assert re.search(r"tinyarms: explain → \S+", explain["status"]), explain
    assert "route explain" in explain["answer"].replace("*", ""), explain["answer"]
    # Between the title and the decision footer: the model's answer, in words (not only echoed code).
    body = explain["answer"].split("\n---\n")[0].split("\n", 1)[-1]
    prose = re.sub(r"```.*?```", "", body, flags=re.S)
    assert len(re.findall(r"[A-Za-z]{2,}", prose)) >= 3, explain["answer"]


def test_chat_view_streams_an_answer_with_its_decision(editor: dict[str, Any]) -> None:
    require_command("tinyarms.chat")
    chat = step(editor, "chat", "chat")
    assert chat["question"] == "What does read_lines return?", chat
    assert not chat["error"] and len(re.findall(r"[A-Za-z]{2,}", chat["answer"])) >= 3, chat
    # Under the answer: route, role, tier, latency (and cost when the tier has a price).
    assert re.match(r"route \S+ · role chat · tier local · [\d.]+ (ms|s)", chat["decision"]), chat
    assert re.search(r"tinyarms: \S+ → local · [\d.]+ (ms|s)", chat["status"]), chat
    if chat["code_blocks"]:
        assert {"Copy", "Insert"} <= set(chat["buttons"]), chat
    print(f"chat view: {chat['decision']}\n{chat['answer'][:500]}")


CHAT_QUESTION = "What does read_lines return?"  # as e2e/run.mjs asks it


def test_thumbs_down_route_correction_and_stronger_tier_from_the_chat_view_reach_the_trace(
    editor: dict[str, Any], http: FaultServer
) -> None:
    require_command("tinyarms.reask")
    feedback = step(editor, "chat_feedback", "chat_feedback")
    # The buttons under the answer, and what each click showed it recorded.
    assert {"Good answer", "Not a good answer", "Try a stronger tier", "Wrong route…"} <= set(feedback["buttons"])
    assert feedback["down"] == "recorded: thumbs down (not a good answer)", feedback
    assert feedback["down_pressed"] == "true", feedback
    routes = feedback["routes"]
    assert any(r.startswith("fix") for r in routes) and any(r.startswith("none") for r in routes), routes
    assert feedback["route"] == "recorded: thumbs down (not a good answer) · route should have been fix", feedback
    # The stronger tier (the fault server's model "ok", chat's strong_tier) answered below it,
    # and was asked the same question.
    stronger = feedback["stronger"]
    assert stronger["answer"] == "Answer from ok.", stronger
    assert "tier scripted-strong" in stronger["decision"] and stronger["decision"].startswith("stronger tier"), stronger
    assert "Try a stronger tier" not in stronger["buttons"] and "Not a good answer" in stronger["buttons"], stronger
    assert feedback["original_note"].endswith("· asked scripted-strong again (below)"), feedback
    asked = [e for e in http.log if e["model"] == "ok"]
    assert asked and CHAT_QUESTION in json.dumps(asked[-1]["messages"]), asked
    # The decision trace, as the session left it.
    trace = editor["trace_feedback"]
    assert "error" not in trace, trace
    chats = {r["id"] for r in trace["requests"] if r["role"] == "chat" and r["tier"] == "local"}
    lines = trace["feedback"]
    (down,) = [f for f in lines if f.get("rating") == "down"]
    answered = down["trace_id"]
    assert answered in chats, (down, trace["requests"])
    (fixed,) = [f for f in lines if f.get("route") == "fix"]
    assert fixed["trace_id"] == answered and fixed["from_route"] != "fix", fixed
    (again,) = [f for f in lines if f.get("outcome") == "reask_stronger"]
    assert again["trace_id"] == answered and again["tier"] == "scripted-strong", again
    strong = {r["id"] for r in trace["requests"] if r["tier"] == "scripted-strong"}
    assert again["reask_trace_id"] in strong, (again, trace["requests"])
    assert [(c["route"], c["text"], c["trace_id"]) for c in trace["corrections"]] == [("fix", CHAT_QUESTION, answered)]
    print(f"chat feedback in the trace: {json.dumps(lines, indent=1)}")


def test_edit_selection_shows_a_diff_accept_applies_one_undo_restores(editor: dict[str, Any]) -> None:
    require_command("tinyarms.edit")
    edit = step(editor, "edit", "edit")
    assert "(current ↔ proposed)" in edit["diff_tab"], edit["diff_tab"]
    assert "Return the number of whitespace-separated words in text." in edit["modified"], edit["modified"]
    assert edit["inserted_decorations"] > 0 and edit["unchanged_before_accept"], edit
    assert {"Accept Proposed Edit", "Reject Proposed Edit"} <= set(edit["title_actions"]), edit["title_actions"]
    applied = edit["applied"]
    assert '    """Return the number of whitespace-separated words in text."""\n' in applied, applied
    assert applied.replace('    """Return the number of whitespace-separated words in text."""\n', "") == edit["before"]
    compile(applied, "example.py", "exec")
    assert edit["undo_restores"], edit.get("undone")
    assert re.search(r"tinyarms: (no route|\S+) → scripted-edit · [\d.]+ (ms|s)", edit["status"]), edit["status"]
    # Accept went into the proposal's trace as its outcome.
    trace = editor["trace_feedback"]
    edits = {r["id"] for r in trace["requests"] if r["role"] == "edit" and r["tier"] == "scripted-edit"}
    accepted = [f for f in trace["feedback"] if f.get("outcome") == "accepted"]
    assert len(accepted) == 1 and accepted[0]["trace_id"] in edits, (accepted, trace["requests"])


def test_agent_edits_a_file_lists_it_and_undo_restores_it(editor: dict[str, Any]) -> None:
    require_command("tinyarms.agent")
    agent = step(editor, "agent", "agent")
    assert "changed TODO.md" in agent["message"] and "Undo" in agent["message"], agent
    assert agent["edited"] == TODO.replace("- [ ] count the words", "- [x] count the words"), agent
    assert agent["restored"], agent
    assert "1 restored" in agent["undo_message"], agent
    print(f"agent: {agent['message']!r}; undo: {agent['undo_message']!r}")


def test_acceptance_feedback_reaches_tinyarms_stats(editor: dict[str, Any]) -> None:
    require_command("tinyarms.autocomplete.feedback")
    feedback = step(editor, "feedback", "feedback")
    partial = feedback["partial"]
    # Ctrl+Right took the start of the suggestion, not all of it: the rest still shows.
    ghost, rest = partial["ghost"], partial["ghost_after"]
    assert rest and len(rest) < len(ghost) and ghost.endswith(rest), partial
    assert not feedback["dismissed"]["ghost_after_escape"], feedback
    stats = editor["stats"]
    assert stats and stats["returncode"] == 0, stats
    print(f"tinyarms stats after the VS Code session:\n{stats['stdout']}")
    counts = acceptance_counts(stats["stdout"])
    assert counts["shown"] >= 3 and all(counts[k] >= 1 for k in ("accepted", "partial", "dismissed")), stats["stdout"]


def test_cursor_moves_reach_the_server_as_tinyarms_cursor_moved(editor: dict[str, Any]) -> None:
    """The extension tells the server where the cursor rests (clicks and keys in the editor,
    not typing; vscode-client/src/cursor.ts), so the server prefills there: it says so in
    its log the first time one arrives."""
    paths = editor.get("logs", {}).get("tinyarms", [])
    text = "\n".join(Path(path).read_text(errors="replace") for path in paths)
    assert "the client sends tinyarms/cursorMoved" in text, logs(editor)


def test_status_bar_menu_toggles_autocomplete(editor: dict[str, Any]) -> None:
    off, on = step(editor, "toggle", "toggle")
    menu = " | ".join(off["menu"])
    for entry in ("Show effective config", "Open user config", "Decision trace and stats", "Toggle autocomplete"):
        assert entry in menu, menu
    assert "autocomplete off" in off["status"] and "autocomplete off" not in on["status"], (off, on)


def test_missing_tinyarms_gets_a_clear_message(editor: dict[str, Any]) -> None:
    message = step(editor, "not_installed", "not_installed")["message"]
    assert "tinyarms is not installed for /nonexistent/python3" in message, message
    assert "PYTHON=/nonexistent/python3 ./scripts/install.sh" in message, message


def test_no_process_outlives_the_editor_and_screenshots_exist(editor: dict[str, Any]) -> None:
    assert editor["leftover_pids"] == [], f"processes outlived code-server: {editor['leftover_pids']}"
    assert editor["screenshots"]
    for shot in editor["screenshots"]:
        assert Path(shot).stat().st_size > 10_000, shot
