"""`tinyarms setup nvim`: the init.lua lines that attach the installed tinyarms to Neovim.

The Neovim side ships inside the package (tinyarms/nvim: `lsp/tinyarms.lua` in the Neovim
0.11 `lsp/` config format, and `lua/tinyarms/`). The snippet puts that directory on
'runtimepath', points `cmd` at the Python tinyarms is installed in and enables the server,
so a user who installed tinyarms needs nothing else.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BEGIN = "-- >>> tinyarms (added by `tinyarms setup nvim`; run it again to update) >>>"
END = "-- <<< tinyarms <<<"


def nvim_dir() -> Path:
    """The shipped Neovim config directory (lsp/, lua/)."""
    return Path(__file__).resolve().parent / "nvim"


def lua_string(text: str) -> str:
    """A Lua string literal for `text` (paths may hold quotes, backslashes, any UTF-8)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(f"\\{ord(ch):03d}" if ord(ch) < 32 or ord(ch) == 127 else ch for ch in escaped)
    return f'"{escaped}"'


def server_cmd(python: str) -> str:
    """`python -P -m tinyarms serve`: Neovim starts the server in the project folder, and
    without -P (Python 3.11+) `-m` would import a `tinyarms/` or `queue.py` found there."""
    return "{ " + ", ".join(lua_string(part) for part in (python, "-P", "-m", "tinyarms", "serve")) + " }"


def snippet(python: str | None = None) -> str:
    """The init.lua block: runtimepath, the server command, enable."""
    python = python or sys.executable
    return "\n".join(
        [
            BEGIN,
            f"vim.opt.runtimepath:append({lua_string(str(nvim_dir()))})",
            f"vim.lsp.config('tinyarms', {{ cmd = {server_cmd(python)} }})",
            "vim.lsp.enable('tinyarms')",
            END,
            "",
        ]
    )


def lazy_spec(python: str | None = None) -> str:
    """A lazy.nvim plugin spec file (for lua/plugins/tinyarms.lua)."""
    python = python or sys.executable
    return "\n".join(
        [
            "-- tinyarms for lazy.nvim (written by `tinyarms setup nvim --lazy`)",
            "return {",
            "  {",
            '    name = "tinyarms",',
            f"    dir = {lua_string(str(nvim_dir()))},",
            "    config = function()",
            f"      vim.lsp.config('tinyarms', {{ cmd = {server_cmd(python)} }})",
            "      vim.lsp.enable('tinyarms')",
            "    end,",
            "  },",
            "}",
            "",
        ]
    )


def config_dir(env: dict[str, str] | None = None) -> Path:
    """Neovim's config directory, as stdpath('config') computes it."""
    env = dict(os.environ if env is None else env)
    app = env.get("NVIM_APPNAME") or "nvim"
    if base := env.get("XDG_CONFIG_HOME"):
        return Path(base) / app
    if os.name == "nt":
        return Path(env.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / app
    return Path.home() / ".config" / app


def init_file(env: dict[str, str] | None = None) -> Path:
    """The user's init file: init.lua, or init.vim when only that exists (Neovim refuses both)."""
    folder = config_dir(env)
    lua, vim = folder / "init.lua", folder / "init.vim"
    return vim if vim.is_file() and not lua.is_file() else lua


def block_for(path: Path, block: str) -> str:
    """init.vim takes the Lua block inside a `lua << EOF` heredoc."""
    if path.suffix == ".vim":
        return f"lua << TINYARMS_EOF\n{block}TINYARMS_EOF\n"
    return block


def updated_text(current: str, block: str) -> str:
    """`current` with the tinyarms block added, or the old block replaced in place."""
    start = current.find(BEGIN)
    if start != -1:
        end = current.find(END, start)
        if end != -1:
            after = current.find("\n", end)
            after = len(current) if after == -1 else after + 1
            # A heredoc wrapper (init.vim) sits around the markers: keep it as it is.
            return current[:start] + block_text_only(block) + current[after:]
    separator = "" if not current or current.endswith("\n\n") else ("\n" if current.endswith("\n") else "\n\n")
    return current + separator + block


def block_text_only(block: str) -> str:
    """The marker-to-marker part of a block (without an init.vim heredoc wrapper)."""
    start = block.find(BEGIN)
    end = block.find(END)
    return block[start : end + len(END)] + "\n"
