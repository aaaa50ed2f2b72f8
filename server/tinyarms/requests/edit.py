"""An edit request, without the editor: which lines change, what the model is asked, and the
model's answer turned into the new file text, checked (or refused with one sentence).

The range is widened to whole lines (a selection from the middle of a line takes the line):
models rewrite whole lines well and fragments badly, and whole lines keep the indentation
and the parse check simple. An empty range is the cursor's line, to be rewritten (a blank
line is an insertion point).

Two kinds of target: the range itself (Refactor, Fix, Document, any instruction), or a test
file (Write tests): `conventions.test_file` says where the project keeps tests; a file that
already exists gets the new tests appended at its end, never overwritten.

Every result passes `edits.extract` (fences, chatter, indentation) and `edits.check.refusal`
(empty, unchanged, broken syntax on the whole new file) before anything leaves this module.
"""

from __future__ import annotations

import os

import attrs

from tinyarms.edits import check, diff, extract, languages
from tinyarms.requests.context import Context

EDIT_SYSTEM = (
    "You are tinyarms, a careful code editor inside the user's editor. You rewrite the lines you are "
    "given as the instruction says. Reply with the complete new version of those lines in one fenced "
    "code block, nothing before it; keep everything the instruction does not ask to change."
)
TESTS_SYSTEM = (
    "You are tinyarms, writing unit tests inside the user's editor. Reply with one fenced code block "
    "holding a complete test file (imports included) for the code you are given, nothing before it."
)


@attrs.frozen
class Target:
    """The lines an edit replaces: [first_line, end_line) of `text` (the whole document)."""

    path: str  # the document's path (its extension picks the parser)
    text: str
    first_line: int
    end_line: int  # exclusive

    @property
    def lines(self) -> list[str]:
        return diff.lines(self.text)

    @property
    def original(self) -> str:
        return "".join(self.lines[self.first_line : self.end_line])

    @property
    def indent(self) -> str:
        """The indentation for an insertion point: the nearest non-blank line above it."""
        for line in reversed(self.lines[: self.first_line + 1]):
            if line.strip():
                return extract.base_indent(line)
        return ""

    def with_replacement(self, replacement: str) -> str:
        lines = self.lines
        before, after = "".join(lines[: self.first_line]), "".join(lines[self.end_line :])
        if before and not before.endswith(("\n", "\r")):
            before += "\n"
        if after and not replacement.endswith(("\n", "\r")):
            replacement += "\n"
        return before + replacement + after


def target(path: str, text: str, start_line: int, end_line: int, end_character: int) -> Target:
    """The whole lines of `text` a range covers (an end at column 0 stops before that line)."""
    count = len(diff.lines(text))
    first = min(max(start_line, 0), max(count - 1, 0))
    last = end_line - 1 if end_line > start_line and end_character == 0 else end_line
    last = min(max(last, first), max(count - 1, 0))
    return Target(path=path, text=text, first_line=first, end_line=min(last + 1, count) if count else 0)


def language_name(path: str) -> str:
    language = languages.for_path(path)
    return language.name if language else (os.path.splitext(path)[1].lstrip(".") or "text")


def messages(target: Target, instruction: str, context: Context, *, label: str) -> list[dict[str, str]]:
    """What the edit role is asked: the lines (labelled), the other context, the instruction."""
    system = EDIT_SYSTEM + (f"\n\n{context.system_text()}" if context.system_text() else "")
    first, last = target.first_line + 1, max(target.end_line, target.first_line + 1)
    span = f"line {first}" if first == last else f"lines {first}-{last}"
    code = target.original if target.original.strip() else "(an empty line: write the new code for it)\n"
    parts = [f"{label} ({span}, {language_name(target.path)}):\n{_fence(code)}"]
    if context.user_text():
        parts.append(context.user_text())
    parts.append(f"Instruction: {instruction}\nReply with the new version of {span} only, in one code block.")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def tests_messages(code: str, source_label: str, test_path: str, module: str, context: Context,
                   instruction: str) -> list[dict[str, str]]:  # fmt: skip
    system = TESTS_SYSTEM + (f"\n\n{context.system_text()}" if context.system_text() else "")
    parts = [f"{source_label} (module `{module}`):\n{_fence(code)}"]
    if context.user_text():
        parts.append(context.user_text())
    parts.append(f"{instruction}\nThe tests go in {test_path}; import what they test from `{module}`.")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def _fence(text: str) -> str:
    return f"```\n{text.rstrip()}\n```"


def new_text(target: Target, answer: str) -> str:
    """The document after the edit: the answer's code in place of the target's lines. Raises Refused."""
    replacement = extract.replacement(answer, target.original, path=target.path, indent=target.indent)
    result = target.with_replacement(replacement)
    reason = check.refusal(target.path, target.text, result)
    if reason:
        raise extract.Refused(reason)
    return result


def tests_text(existing: str | None, answer: str, test_path: str) -> str:
    """The test file after the edit: new, or `existing` with the tests appended. Raises Refused."""
    code = extract.replacement(answer, "", path=test_path)
    old = existing or ""
    result = code if not old.strip() else old.rstrip("\n") + "\n\n\n" + code
    reason = check.refusal(test_path, old, result)
    if reason:
        raise extract.Refused(reason)
    return result
