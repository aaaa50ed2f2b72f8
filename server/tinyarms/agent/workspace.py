"""Confinement: every path the agent names resolves inside the workspace folders.

A model is untrusted input. It may ask for `../../etc/passwd`, `/home/me/.ssh/id_rsa`, or
a path through a symlink a cloned repository planted (`docs -> /`). Each is refused with
a `ToolError` whose message the model sees, so it can correct itself. Resolution is by
`os.path.realpath` (every symlink followed, `..` collapsed) of the path and of the roots,
then a containment check, so no spelling gets around it.

Two kinds of files inside the workspace need the user's permission first: git's own
state (anything under `.git/`: hooks run code, config holds credentials helpers) and
`.env*` files (secrets). `sensitive()` names why; the caller asks (ACP) or refuses (LSP).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path


class ToolError(Exception):
    """A tool call that cannot be done; `str()` goes back to the model as the result."""


SENSITIVE_NAMES = (".env", ".env.*", "*.env")


class Workspace:
    """The folders one agent run may touch. The first is where relative paths start."""

    def __init__(self, roots: Sequence[Path | str]) -> None:
        if not roots:
            raise ValueError("an agent run needs at least one workspace folder")
        self.roots = [Path(os.path.realpath(root)) for root in roots]

    @property
    def primary(self) -> Path:
        return self.roots[0]

    def root_of(self, path: Path) -> Path | None:
        for root in self.roots:
            if path == root or root in path.parents:
                return root
        return None

    def resolve(self, raw: str) -> Path:
        """The real path of `raw` (relative to the first folder), or ToolError if it leaves them all."""
        if not isinstance(raw, str) or not raw.strip():
            raise ToolError("a path is required (relative to the workspace root)")
        if "\x00" in raw:
            raise ToolError(f"refused path {raw!r}: it contains a NUL byte")
        given = Path(os.path.expanduser(raw)) if raw.startswith("~") else Path(raw)
        joined = given if given.is_absolute() else self.primary / given
        real = Path(os.path.realpath(joined))
        if self.root_of(real) is None:
            if given.is_absolute():
                why = "it is an absolute path outside the workspace"
            elif Path(os.path.normpath(joined)) != real and self.root_of(Path(os.path.normpath(joined))):
                why = "it goes through a symlink that leads outside the workspace"
            else:
                why = "it leaves the workspace"
            raise ToolError(f"refused path {raw!r}: {why} ({self._roots_text()}); use a path inside it")
        return real

    def relative(self, path: Path) -> str:
        """How the model and the report name a file: relative to its root (prefixed by the
        root's name when the workspace has several folders)."""
        root = self.root_of(path) or self.primary
        rel = path.relative_to(root).as_posix() if path != root else "."
        return rel if root == self.primary else f"{root}/{rel}"

    def sensitive(self, path: Path) -> str | None:
        """Why reading or writing `path` needs permission, or None."""
        root = self.root_of(path) or self.primary
        parts = path.relative_to(root).parts if path != root else ()
        if ".git" in parts:
            return f"{self.relative(path)} is inside .git/ (git's own state: hooks, config, objects)"
        if any(fnmatch.fnmatch(path.name, pattern) for pattern in SENSITIVE_NAMES):
            return f"{self.relative(path)} is an environment file and may hold secrets"
        return None

    def _roots_text(self) -> str:
        return "workspace: " + ", ".join(str(root) for root in self.roots)
