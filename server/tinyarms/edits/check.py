"""The last gate before a file changes: is the new text worth writing, and does it still parse?

`refusal(path, old, new)` takes the whole file before and after and returns one sentence
saying why the change must not be applied, or None. It refuses:

- an empty new file (when the old one had text) or a change that changes nothing (only
  trailing whitespace or blank lines at the end count as nothing);
- a change that breaks the file's syntax: the old text parsed and the new text does not
  (Python with `ast`, TypeScript/TSX/JavaScript/Rust/Go with tree-sitter, chosen by the
  path's extension; see `languages.py`). A file that did not parse before is not held
  against the edit (the user may be halfway through typing, or asking for the fix), and a
  file tinyarms has no parser for is only checked for empty/unchanged.

Every writer of a user's file (the edit command, the agent's tools) calls this, so no front
door can apply an unchecked change.
"""

from __future__ import annotations

from tinyarms.edits import languages


def _normalised(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def unchanged(old: str, new: str) -> bool:
    """True when the texts differ at most in trailing whitespace and trailing blank lines."""
    return old == new or _normalised(old) == _normalised(new)


def refusal(path: str, old: str, new: str) -> str | None:
    """One sentence saying why `new` must not replace `old` in the file at `path`, or None."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1] or path
    if not new.strip() and old.strip():
        return f"The proposed {name} is empty, so nothing was changed."
    if unchanged(old, new):
        return f"The proposed change leaves {name} as it is."
    language = languages.for_path(path)
    if language is None:
        return None
    after = language.problem(new)
    if after is None:
        return None
    if language.problem(old) is not None:
        return None  # it did not parse before either
    return f"The change would break the {language.name} syntax of {name} ({after}), so it was not applied."
