"""The model child under a watchdog, and the router's llama.cpp use kept out of the server (real models).

- A SIGSTOPped child (hung native code looks the same) stopped answering and status stayed
  "ready" forever. The watchdog pings it; one that does not answer is killed and restarted,
  and `tinyarms.status` says it hung.
- `router.enabled = false` loaded the encoder (and exported ONNX on a first run); now it
  loads nothing. (The router's LLM stage, which once loaded a GGUF in the server, was removed
  in issue 16: measured, it did not help.)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from conftest import start_client


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


async def status(lsp: Any) -> dict[str, Any]:
    result = await lsp.workspace_execute_command_async(types.ExecuteCommandParams(command="tinyarms.status"))
    model: dict[str, Any] = (result.get("model") or {}).get("autocomplete") or {}
    return model


async def test_a_hung_model_child_is_restarted_and_status_says_so(
    workspace: Path, env: dict[str, str], user_config: Path
) -> None:
    user_config.parent.mkdir(parents=True)
    user_config.write_text('extends = "local-only"\n')
    lsp = await start_client("neovim", workspace, dict(env, TINYARMS_WATCHDOG_S="1"))
    try:
        for _ in range(900):
            if (await status(lsp)).get("state") == "ready":
                break
            await asyncio.sleep(0.2)
        assert (await status(lsp))["state"] == "ready"
        server_pid = lsp._server.pid  # type: ignore[attr-defined]
        [child] = children(server_pid)
        os.kill(child, signal.SIGSTOP)
        seen: list[dict[str, Any]] = []
        for _ in range(600):
            seen.append(await status(lsp))
            if seen[-1].get("state") == "ready" and seen[-1].get("crashes"):
                break
            await asyncio.sleep(0.1)
        final = seen[-1]
        assert final["state"] == "ready", seen[-5:]
        assert final["crashes"] == 1
        assert final["last_failure"].startswith("hung:"), final
        assert children(server_pid) != [child]
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)  # the stopped child was killed, not left behind

        uri = (workspace / "a.py").as_uri()
        lsp.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, "def add(a, b):\n    return "))
        )
        answer = await lsp.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri),
                position=types.Position(1, 11),
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
            )
        )
        assert answer is not None  # the restarted child answers
    finally:
        await lsp.shutdown_session()


ROUTER_PROBE = """
import json, sys
from tinyarms.config import ConfigInputs, load_config
from tinyarms.router import load_router

config = load_config(ConfigInputs(env=dict(arg.split("=", 1) for arg in sys.argv[1:]))).config
router = load_router(config)
decision = router.route(sys.stdin.read())
print(json.dumps({
    "llama_cpp_in_server": "llama_cpp" in sys.modules,
    "onnxruntime_in_server": "onnxruntime" in sys.modules,
    "encoder": router.encoder is not None,
    "stage": decision.stage,
}))
"""


def route_in_subprocess(env: dict[str, str], text: str, *settings: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-P", "-c", ROUTER_PROBE, *settings],
        input=text, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def test_a_disabled_router_loads_no_encoder(env: dict[str, str]) -> None:
    out = route_in_subprocess(env, "explain this regex", "TINYARMS_ROUTER__ENABLED=false")
    assert out == {
        "llama_cpp_in_server": False,
        "onnxruntime_in_server": False,
        "encoder": False,
        "stage": "fallback",
    }
