"""`tinyarms setup nvim`: the init.lua lines (or a lazy.nvim spec) that attach the installed
tinyarms to Neovim 0.11+, printed, or written after asking (see setup_nvim.py)."""

from __future__ import annotations

import argparse
import sys

from tinyarms.cli.common import Subparsers, arg, command, flag, group


def register(sub: Subparsers) -> None:
    command(
        group(sub, "setup", "set up an editor"), "nvim", "the init.lua lines for Neovim 0.11+ (--write adds them)",
        cmd_nvim,
        flag("--write", "add them to your Neovim config, after asking"),
        flag("--yes", "do not ask"),
        flag("--lazy", "a lazy.nvim spec (lua/plugins/tinyarms.lua) instead"),
        arg("--python", help="the Python that runs the server (default: this one)"),
    )  # fmt: skip


def _confirm(question: str) -> bool:
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:  # no terminal: the answer is no
        print(file=sys.stderr)
        return False


def cmd_nvim(args: argparse.Namespace) -> int:
    from tinyarms import setup_nvim

    if args.lazy:
        text = setup_nvim.lazy_spec(args.python)
        path = setup_nvim.config_dir() / "lua" / "plugins" / "tinyarms.lua"
    else:
        text = setup_nvim.snippet(args.python)
        path = setup_nvim.init_file()
    if not args.write:
        print(text, end="")
        where = f"save it as {path}" if args.lazy else f"add these lines to {path}"
        print(f"-- {where}, or run `tinyarms setup nvim{' --lazy' if args.lazy else ''} --write`", file=sys.stderr)
        return 0
    current = path.read_text(encoding="utf-8") if path.is_file() else ""
    if args.lazy:
        if current and not current.startswith(text.splitlines()[0]):
            print(f"tinyarms: {path} exists and was not written by tinyarms; nothing written", file=sys.stderr)
            return 1
        new = text
    else:
        new = setup_nvim.updated_text(current, setup_nvim.block_for(path, text))
    if new == current:
        print(f"{path}: tinyarms is already set up")
        return 0
    print(text, end="")
    verb = "Update the tinyarms lines in" if setup_nvim.BEGIN in current else "Add this to"
    if not args.yes and not _confirm(f"{verb} {path}?"):
        print("nothing written", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tinyarms-tmp")
    partial.write_text(new, encoding="utf-8")
    partial.replace(path)
    print(f"{path}: written; open a project file in Neovim and run :TinyarmsStatus")
    return 0
