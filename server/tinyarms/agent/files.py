"""Where the agent's file reads and writes land: the disk, or the editor.

Each front door passes its own `Files`: the LSP one reads open buffers and writes through
`workspace/applyEdit` (features/agent.py), the ACP one goes through the client's
`fs/read_text_file` / `fs/write_text_file` when offered (acp/). `DiskFiles` is the plain
fallback. Snapshots are bytes so an undo restores a file byte for byte (line endings, BOM
and all); None means the file did not exist.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from tinyarms.agent.workspace import ToolError

MAX_FILE_BYTES = 2_000_000  # larger files are not read into a model's context
BOM = b"\xef\xbb\xbf"  # kept out of the text the model sees, and kept on the file when written


class Files(Protocol):
    async def read(self, path: Path) -> str:
        """The file's text as the user sees it now. ToolError when missing, binary or too large."""
        ...

    async def write(self, path: Path, old: str | None, new: str) -> None:
        """Replace `old` (None: the file is new) with `new`."""
        ...

    async def snapshot(self, path: Path) -> bytes | None:
        """The file's exact bytes now, or None when it does not exist."""
        ...

    async def restore(self, path: Path, data: bytes | None) -> None:
        """Put `data` back byte for byte; None deletes the file."""
        ...


def decode(path: Path, data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise ToolError(f"{path.name} is {len(data)} bytes; files over {MAX_FILE_BYTES} are not read")
    if b"\x00" in data[:8192]:
        raise ToolError(f"{path.name} is a binary file")
    try:
        return data.removeprefix(BOM).decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"{path.name} is not UTF-8 text") from None


def read_disk(path: Path) -> str:
    if path.is_dir():
        raise ToolError(f"{path.name} is a directory; use list_files")
    try:
        return decode(path, path.read_bytes())
    except FileNotFoundError:
        raise ToolError(f"no such file: {path.name}") from None
    except OSError as exc:
        raise ToolError(f"cannot read {path.name}: {exc.strerror}") from None


def write_disk(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("rb") as existing:
            bom = existing.read(len(BOM)) == BOM
    except FileNotFoundError:
        bom = False
    path.write_bytes((BOM if bom else b"") + text.encode("utf-8"))


def snapshot_disk(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def restore_disk(path: Path, data: bytes | None) -> None:
    if data is None:
        if path.exists():
            os.unlink(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class DiskFiles:
    """Files on disk, as they are."""

    async def read(self, path: Path) -> str:
        return read_disk(path)

    async def write(self, path: Path, old: str | None, new: str) -> None:
        write_disk(path, new)

    async def snapshot(self, path: Path) -> bytes | None:
        return snapshot_disk(path)

    async def restore(self, path: Path, data: bytes | None) -> None:
        restore_disk(path, data)
