"""`tinyarms serve --tcp`: the same server over a socket, spoken to in raw JSON-RPC."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode()
    sock.sendall(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


def receive(sock: socket.socket, buffer: bytearray) -> dict[str, Any]:
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    header, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in header.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    buffer[:] = rest[length:]
    message: dict[str, Any] = json.loads(rest[:length])
    return message


def test_serve_over_tcp_answers_initialize_and_show_config(env: dict[str, str], workspace: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tinyarms", "serve", "--tcp", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
                assert time.monotonic() < deadline, "server did not listen"
                time.sleep(0.2)
        buffer = bytearray()
        with sock:
            send(
                sock,
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {"processId": None, "rootUri": workspace.as_uri(), "capabilities": {}},
                },
            )
            reply = receive(sock, buffer)
            assert reply["id"] == 1
            assert reply["result"]["serverInfo"]["name"] == "tinyarms"
            send(sock, {"jsonrpc": "2.0", "method": "initialized", "params": {}})
            send(
                sock,
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "workspace/executeCommand",
                    "params": {"command": "tinyarms.showConfig", "arguments": []},
                },
            )
            while (reply := receive(sock, buffer)).get("id") != 2:
                pass  # log messages and diagnostics arrive too
            assert reply["result"]["config"]["roles"]["autocomplete"]["tier"]["value"] == "local"
    finally:
        server.kill()
        server.wait(timeout=10)
