"""`tinyarms serve`: the language server, on stdio (what editors start) or TCP."""

from __future__ import annotations

import argparse

from tinyarms.cli.common import Subparsers, arg, command, flag


def register(sub: Subparsers) -> None:
    command(
        sub, "serve", "run the language server (stdio by default)", cmd_serve,
        arg("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio"),
        flag("--stdio", "use stdio (the default; for clients that pass it)"),
    )  # fmt: skip


def cmd_serve(args: argparse.Namespace) -> int:
    from tinyarms.server import create_server

    server = create_server()
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        server.start_io()
    return 0
