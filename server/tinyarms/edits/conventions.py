"""Where a project keeps the tests for a file: one rule per language, by extension.

| language | when | test file |
|---|---|---|
| Python | a `tests/` (or `test/`) folder at the workspace root | `tests/test_<module>.py` |
| Python | otherwise | `test_<module>.py` beside the file |
| Go | always | `<name>_test.go` beside the file |
| TypeScript / JavaScript | a `__tests__/` folder beside the file | `__tests__/<name>.test.<ext>` |
| TypeScript / JavaScript | otherwise | `<name>.test.<ext>` beside the file |
| Rust, anything else | | none: the tests go at the end of the file itself |

The result is a path inside the workspace folder (the caller still never overwrites: an
existing test file gets the new tests appended).
"""

from __future__ import annotations

import os
from collections.abc import Callable


def _python(path: str, root: str) -> str:
    module = os.path.splitext(os.path.basename(path))[0]
    if module.startswith("test_") or module.endswith("_test"):
        return path  # already a test file: its own tests go in it
    for folder in ("tests", "test"):
        if os.path.isdir(os.path.join(root, folder)):
            return os.path.join(root, folder, f"test_{module}.py")
    return os.path.join(os.path.dirname(path), f"test_{module}.py")


def _go(path: str, root: str) -> str:
    stem = os.path.splitext(path)[0]
    return path if stem.endswith("_test") else f"{stem}_test.go"


def _script(path: str, root: str) -> str:
    folder, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    beside = os.path.join(folder, "__tests__")
    where = beside if os.path.isdir(beside) else folder
    return os.path.join(where, f"{stem}.test{ext}")


RULES: dict[str, Callable[[str, str], str]] = {
    ".py": _python,
    ".go": _go,
    **{ext: _script for ext in (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")},
}


def test_file(path: str, root: str) -> str | None:
    """The test file for the source file `path` in the project at `root`, or None: in the file itself."""
    rule = RULES.get(os.path.splitext(path)[1].lower())
    if rule is None:
        return None
    result = rule(path, root)
    return None if os.path.abspath(result) == os.path.abspath(path) else result


def module_name(path: str, root: str) -> str:
    """The dotted import name of a Python file under `root` (`src/` layouts drop the `src`)."""
    relative = os.path.relpath(os.path.splitext(path)[0], root).replace(os.sep, "/")
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if parts and parts[0] in ("src", "lib") and len(parts) > 1:
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) if parts and ".." not in parts else os.path.splitext(os.path.basename(path))[0]
