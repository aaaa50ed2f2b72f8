"""`tinyarms.ask` reads a selection only from open documents and files inside the workspace.

pygls' `get_text_document` reads any path from disk, so an ask naming
`file:///home/me/.ssh/id_rsa` with a range sent that file to the model. Now a uri that is not
open and not inside a workspace folder (symlinks resolved) is an "invalid params" error, and
nothing reaches the tier; a file inside the workspace still works unopened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pygls.exceptions import JsonRpcInvalidParams

from faultserver import FaultServer
from test_lsp_ask import ask, cloud_config

SECRET = "SECRET-TOKEN-0123456789"
RANGE = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}


@pytest.fixture(scope="module")
def http() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


async def test_ask_never_reads_files_outside_the_workspace(
    lsp_factory: Callable[..., Any],
    user_config: Path,
    env: dict[str, str],
    http: FaultServer,
    workspace: Path,
    tmp_path: Path,
) -> None:
    cloud_config(user_config, http, "ok")
    env["TEAM_KEY"] = "not-a-real-key"
    outside = tmp_path / "secret.txt"
    outside.write_text(f"{SECRET}\n")
    (workspace / "link.txt").symlink_to(outside)
    inside = workspace / "inside.py"
    inside.write_text("def inside():\n    return 42\n")
    lsp = await lsp_factory()
    http.reset()
    for target in (outside, workspace / "link.txt"):
        with pytest.raises(JsonRpcInvalidParams, match="neither open in the editor nor inside a workspace folder"):
            await ask(lsp, {"text": "explain", "role": "chat", "uri": target.as_uri(), "range": RANGE})
    assert http.log == []  # nothing was sent
    answer = await ask(lsp, {"text": "explain", "role": "chat", "uri": inside.as_uri(), "range": RANGE})
    assert answer["text"]
    [sent] = http.log
    assert "def inside():" in str(sent["messages"]) and SECRET not in str(sent["messages"])
