"""Minimal diffs: the changed hunks only, as LSP TextEdits and as a unified diff.

An edit that replaces a 40-line selection in which the model changed two lines becomes two
small TextEdits, so the editor's undo, its review and the user's eye see only what changed.
Lines are compared with `difflib.SequenceMatcher` (autojunk off: in code, a frequent line
such as a blank or a `}` is still a line); each TextEdit replaces whole lines, so it never
splits a character or a UTF-16 surrogate pair.

Lines end at `\\n`, `\\r\\n` or `\\r`, as LSP counts them (not `str.splitlines`, which also
breaks at form feeds and U+2028 and would put positions on the wrong line). Columns are
UTF-16 code units, as LSP's default position encoding.
"""

from __future__ import annotations

import difflib
import re

from lsprotocol import types

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def lines(text: str) -> list[str]:
    """The text's lines, each with its line ending (the last may have none)."""
    return _LINE.findall(text)


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _position(old_lines: list[str], index: int) -> types.Position:
    """The position where old line `index` starts (or the end of the text, past the last line)."""
    if index < len(old_lines):
        return types.Position(line=index, character=0)
    if not old_lines:
        return types.Position(line=0, character=0)
    last = old_lines[-1]
    if last.endswith(("\n", "\r")):
        return types.Position(line=len(old_lines), character=0)
    return types.Position(line=len(old_lines) - 1, character=utf16_length(last))


def text_edits(old: str, new: str) -> list[types.TextEdit]:
    """TextEdits that turn `old` into `new`, one per changed hunk of lines, in document order."""
    a, b = lines(old), lines(new)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    edits = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        edits.append(
            types.TextEdit(
                range=types.Range(start=_position(a, i1), end=_position(a, i2)),
                new_text="".join(b[j1:j2]),
            )
        )
    return edits


def _offset(text_lines: list[str], position: types.Position) -> int:
    """The string index of an LSP position (UTF-16 column) in the text made of `text_lines`."""
    offset = sum(len(line) for line in text_lines[: position.line])
    if position.line >= len(text_lines):
        return offset
    line = text_lines[position.line]
    units = 0
    for index, char in enumerate(line):
        if units >= position.character or char in "\r\n":
            return offset + index
        units += 2 if ord(char) > 0xFFFF else 1
    return offset + len(line)


def apply(text: str, edits: list[types.TextEdit]) -> str:
    """The text after the edits (non-overlapping, positions in the original text), as an editor applies them."""
    text_lines = lines(text)
    spans = sorted(
        ((_offset(text_lines, e.range.start), _offset(text_lines, e.range.end), e.new_text) for e in edits),
        key=lambda span: span[:2],
        reverse=True,
    )
    for start, end, new_text in spans:
        text = text[:start] + new_text + text[end:]
    return text


def unified(path: str, old: str, new: str, context: int = 3) -> str:
    """A git-style unified diff of the file at `path` (empty when nothing changed)."""
    out = []
    for line in difflib.unified_diff(lines(old), lines(new), f"a/{path}", f"b/{path}", n=context):
        if line.endswith(("\n", "\r")):
            out.append(line if line.endswith("\n") else line + "\n")
        else:
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)
