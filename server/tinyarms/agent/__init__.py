"""The agent core: a bounded, undoable loop of model steps and workspace-confined tools.

Flow: a front door (features/agent.py for LSP, acp/ for ACP) builds a `ToolContext`
(the workspace, how files are read and written, how permission is asked) and a `Run`
(loop.py) with the built-in tools (tools.py) and any MCP servers (mcp.py), awaits
`run.execute()` for the `Report`, and keeps the run for `undo` (checkpoints.py).
"""

from tinyarms.agent.checkpoints import Checkpoint
from tinyarms.agent.files import DiskFiles, Files
from tinyarms.agent.loop import Events, FileRecord, Report, Run, StepRecord, ToolCallRecord
from tinyarms.agent.mcp import McpServerSpec, from_config
from tinyarms.agent.tools import PermissionRequest, Tool, ToolContext, builtin_tools
from tinyarms.agent.workspace import ToolError, Workspace

__all__ = [
    "Checkpoint", "DiskFiles", "Events", "FileRecord", "Files", "McpServerSpec", "PermissionRequest", "Report",
    "Run", "StepRecord", "Tool", "ToolCallRecord", "ToolContext", "ToolError", "Workspace", "builtin_tools",
    "from_config",
]  # fmt: skip
