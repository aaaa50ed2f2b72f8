"""`tinyarms acp`: the agent over the Agent Client Protocol on stdio (Zed, JetBrains, ...)."""

from __future__ import annotations

import argparse

from tinyarms.cli.common import Subparsers, command


def register(sub: Subparsers) -> None:
    command(sub, "acp", "run the agent over the Agent Client Protocol on stdio (Zed, JetBrains, ...)", cmd_acp)


def cmd_acp(args: argparse.Namespace) -> int:
    from tinyarms.acp import main

    return main()
