"""Malformed JSON-RPC over real stdio: every request gets an answer and the server keeps serving.

A raw client (bytes on the server's stdin, not pytest-lsp, which would refuse to send
most of these) sends each malformed shape: params null, a position given as a string,
negative or 2^31, command arguments of the wrong type, a body that is not JSON, a
Content-Length of 10^20, of 3*10^9 and of "abc", and non-object initializationOptions.
Each request must get a result or a one-line error without a traceback, and afterwards the
server must answer a valid completion. Then `exit` ends it quietly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import isolated_env


class RawClient:
    """LSP framing by hand, replies collected by a reader thread."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "tinyarms", "serve", "-v"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.replies: dict[Any, dict[str, Any]] = {}
        self.null_id: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.decode(errors="replace"))

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while (line := out.readline()).strip():
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not line or length is None:
                return
            message = json.loads(out.read(length))
            if "method" in message and "id" in message:  # a request from the server
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif "id" in message:
                with self.lock:
                    if message["id"] is None:
                        self.null_id.append(message)
                    self.replies[message["id"]] = message

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: Any) -> None:
        body = json.dumps(message).encode()
        self.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def request(self, msg_id: int, method: str, params: Any, timeout: float = 30) -> dict[str, Any]:
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return self.wait(msg_id, timeout)

    def wait(self, msg_id: Any, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if msg_id in self.replies:
                return self.replies[msg_id]
            assert self.proc.poll() is None, f"the server exited ({self.proc.returncode}): {''.join(self.stderr[-20:])}"
            time.sleep(0.02)
        raise AssertionError(f"no answer to request {msg_id} in {timeout} s")

    def initialize(self, workspace: Path, options: Any = None) -> dict[str, Any]:
        uri = workspace.as_uri()
        params = {
            "processId": None,
            "rootUri": uri,
            "capabilities": {},
            "initializationOptions": options,
            "workspaceFolders": [{"uri": uri, "name": "ws"}],
        }
        reply = self.request(0, "initialize", params, timeout=120)
        self.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        return reply


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RawClient, Path]]:
    root = tmp_path_factory.mktemp("fuzz")
    workspace = root / "ws"
    workspace.mkdir()
    (workspace / "a.py").write_text("def add(a, b):\n    return a + b\n")
    raw = RawClient(isolated_env(root / "home"))
    assert "result" in raw.initialize(workspace)
    uri = (workspace / "a.py").as_uri()
    raw.send(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {
                "textDocument": {
                    "uri": uri,
                    "languageId": "python",
                    "version": 1,
                    "text": (workspace / "a.py").read_text(),
                }
            },
        }
    )
    yield raw, workspace
    raw.proc.kill()
    raw.proc.wait()


def at(uri: str, line: Any, character: Any) -> dict[str, Any]:
    return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}


def assert_one_line_error(reply: dict[str, Any], code: int) -> str:
    assert "error" in reply, reply
    error = reply["error"]
    assert error["code"] == code, error
    assert "\n" not in error["message"] and "Traceback" not in error["message"], error
    assert "traceback" not in json.dumps(error.get("data")), error
    return str(error["message"])


def test_every_malformed_request_is_answered_then_completion_works(client: tuple[RawClient, Path]) -> None:
    raw, workspace = client
    uri = (workspace / "a.py").as_uri()
    shapes: list[tuple[str, str, Any, str]] = [
        ("textDocument/completion", "params null", None, "params"),
        ("textDocument/completion", "position as string", at(uri, "one", "two"), "line"),
        ("textDocument/completion", "negative", at(uri, -1, 0), "line"),
        ("textDocument/completion", "2^31", at(uri, 0, 2**31), "character"),
        ("textDocument/inlineCompletion", "params null", None, "params"),
        ("workspace/executeCommand", "params null", None, "params"),
    ]
    for msg_id, (method, what, params, field) in enumerate(shapes, start=1):
        message = assert_one_line_error(raw.request(msg_id, method, params), -32602)
        assert field in message, (what, message)

    # Command arguments of the wrong shape: invalid params, one line, naming the problem.
    toggle = raw.request(
        20, "workspace/executeCommand", {"command": "tinyarms.toggleAutocomplete", "arguments": [{"enabled": "no"}]}
    )
    assert "enabled" in assert_one_line_error(toggle, -32602)
    ask = raw.request(21, "workspace/executeCommand", {"command": "tinyarms.ask", "arguments": [5]})
    assert_one_line_error(ask, -32602)
    assert raw.request(
        22, "workspace/executeCommand", {"command": "tinyarms.toggleAutocomplete", "arguments": [{"enabled": True}]}
    )["result"] == {"enabled": True}

    # Bodies and headers: an error with id null for each, and the next message is served.
    for number, frame in enumerate(
        [
            b"Content-Length: 9\r\n\r\nnot json!",
            b"Content-Length: 7\r\n\r\n[1,2,3]",
            b"Content-Length: 100000000000000000000\r\n\r\n",
            b"Content-Length: 3000000000\r\n\r\n",
            b"Content-Length: abc\r\n\r\n",
        ],
        start=30,
    ):
        errors_before = len(raw.null_id)
        raw.write(frame)
        reply = raw.request(number, "workspace/executeCommand", {"command": "tinyarms.showConfig"})
        assert reply.get("result", {}).get("config") is not None, reply
        assert len(raw.null_id) == errors_before + 1, (frame, raw.null_id)
        assert_one_line_error(raw.null_id[-1], raw.null_id[-1]["error"]["code"])

    completion = raw.request(50, "textDocument/completion", at(uri, 1, 10))
    assert "result" in completion, completion


def test_non_object_initialization_options_and_quiet_exit(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    env = isolated_env(tmp_path / "home")
    # Nothing loading in the background: `exit` waits for a router still loading in a thread.
    user_file = Path(env["XDG_CONFIG_HOME"]) / "tinyarms" / "config.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("[roles.autocomplete]\nenabled = false\n[router]\nenabled = false\n")
    raw = RawClient(env)
    try:
        reply = raw.initialize(workspace, options="abc")
        assert "result" in reply, reply
        config = raw.request(1, "workspace/executeCommand", {"command": "tinyarms.showConfig"})
        assert config["result"]["trusted"] is False
        assert any("initializationOptions is str" in line for line in raw.stderr)
        assert "result" in raw.request(2, "shutdown", None)
        lines_before = len(raw.stderr)
        raw.send({"jsonrpc": "2.0", "method": "exit"})
        assert raw.proc.stdin is not None
        raw.proc.stdin.close()
        assert raw.proc.wait(30) == 0
        time.sleep(0.2)
        after = raw.stderr[lines_before:]
        assert len(after) < 20, "".join(after[:40])
        assert not any("closed file" in line for line in after), "".join(after[:40])
    finally:
        raw.proc.kill()
