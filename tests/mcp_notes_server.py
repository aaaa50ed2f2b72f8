"""A real MCP server over stdio (the `mcp` SDK's FastMCP) for the agent tests: one tool,
`lookup`, whose answer carries an environment variable the config passed through by name."""

from __future__ import annotations

import os

from mcp.server.fastmcp import FastMCP

server = FastMCP("notes")


@server.tool()
def lookup(word: str) -> str:
    """Look a word up in the project's notes."""
    return f"{word}: a language server with arms (note {os.environ.get('TINYARMS_TEST_NOTE', 'unset')})"


if __name__ == "__main__":
    server.run("stdio")
