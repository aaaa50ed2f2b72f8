"""The Agent Client Protocol front door: `tinyarms acp`, an ACP agent over stdio.

Zed, JetBrains IDEs, Neovim (CodeCompanion.nvim, avante.nvim) and Emacs (agent-shell)
host agents over ACP; this is the same agent core as the LSP's `tinyarms.agent`
(tinyarms.agent), behind the protocol those editors speak. `agent.py` answers every ACP
method, `sessions.py` keeps sessions, modes and what the user allowed.
"""

from __future__ import annotations

import asyncio


def main() -> int:
    from tinyarms.acp.agent import serve

    asyncio.run(serve())
    return 0
