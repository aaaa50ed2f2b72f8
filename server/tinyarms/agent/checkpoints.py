"""Checkpoints: what a run found before it first wrote each file, so undo can put it back.

Before the first write to a path the run records its exact bytes (None when the run
creates it). `undo` restores every recorded file byte for byte and deletes the files
the run created, newest first, and empty folders the run made for them. A checkpoint is
kept per run id for the life of the process (runs are few and files small).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from attrs import define, field

from tinyarms.agent.files import Files


@define
class Checkpoint:
    originals: dict[Path, bytes | None] = field(factory=dict)  # in first-touch order
    made_dirs: list[Path] = field(factory=list)

    async def before_write(self, files: Files, path: Path) -> None:
        """Record `path` once, before the run's first write to it."""
        if path in self.originals:
            return
        self.originals[path] = await files.snapshot(path)
        if self.originals[path] is None:
            missing = []
            parent = path.parent
            while not parent.exists():
                missing.append(parent)
                parent = parent.parent
            self.made_dirs += [d for d in reversed(missing) if d not in self.made_dirs]

    def created(self, path: Path) -> bool:
        return path in self.originals and self.originals[path] is None

    async def undo(self, files: Files) -> tuple[list[Path], list[Path]]:
        """Put every file back. Returns (restored, deleted)."""
        restored: list[Path] = []
        deleted: list[Path] = []
        for path, data in reversed(list(self.originals.items())):
            await files.restore(path, data)
            (deleted if data is None else restored).append(path)
        for folder in reversed(self.made_dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: never a user's file
        self.originals.clear()
        self.made_dirs.clear()
        return restored, deleted
