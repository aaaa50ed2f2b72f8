"""The context a chat or edit request carries, within the role's token budget, each piece labelled.

What goes along, most important first (a piece that does not fit is cut at a line, and says so):

1. the selection, else the current file around the cursor (lines alternately below and
   above the cursor until the share is used);
2. the diagnostics inside the range (what "fix" is about);
3. files named in the text as `@path` (`@src/app.py`, `@"docs/my notes.md"`), read only
   inside the workspace folders: the path is resolved with `realpath`, so `..`, absolute
   paths and symlinks that lead out are refused with a note, never read; a missing file,
   a folder or a binary file is a note too, never a failure;
4. rules: `.tinyarms/rules.md` in the workspace folder, else `AGENTS.md` there (the
   tinyarms-specific file wins, whole: the two are not merged), added to the system text.
   The rules file must also resolve inside the folder (a symlink to ~/.ssh/... is ignored).

Tokens are estimated at 4 characters each (the same estimate the OpenAI backend uses for
servers that report no usage); the budget is `roles.ROLE.context_tokens`. Shares: rules at
most 1/4 of the budget, the code (selection or file) at most 1/2, each mentioned file what is
left after that, split evenly among the mentioned files. Files over 1 MB are not read past 1 MB.

Everything here takes plain values (texts, paths, ranges): the LSP feature reads the
document and the workspace folders and passes them in, so the CLI and the agent can use it too.
`Context.sent()` is the list the answer shows the user: `[{kind, path?, tokens, note?}]`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import attrs

CHARS_PER_TOKEN = 4
RULES_FILES = (".tinyarms/rules.md", "AGENTS.md")  # the first that exists wins
MAX_READ_BYTES = 1_000_000
MAX_MENTIONS = 8

# `@path` after a space, a line start or an opening bracket/quote (not an e-mail address);
# `@"..."` for paths with spaces. A path ends before trailing punctuation.
MENTION = re.compile(r"""(?:^|(?<=[\s(\[{'"`]))@(?:"([^"\n]+)"|([\w.~/\\-]*[\w/\\-]))""", re.MULTILINE)


def tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


@attrs.frozen
class Diagnostic:
    """A problem the editor shows in the range: 0-based line, message, and where it came from."""

    line: int
    message: str
    severity: str = "error"
    source: str | None = None


@attrs.frozen
class Piece:
    """One labelled piece of context. `note` says why a piece was cut or not sent."""

    kind: str  # selection | file | diagnostics | mention | rules
    label: str  # what the model sees above the text: the path and the lines
    text: str
    path: str | None = None
    note: str | None = None

    @property
    def tokens(self) -> int:
        return tokens(self.text)

    def sent(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "tokens": self.tokens}
        if self.path is not None:
            out["path"] = self.path
        if self.note is not None:
            out["note"] = self.note
        return out


@attrs.frozen
class Context:
    pieces: tuple[Piece, ...] = ()  # for the user message (no rules)
    rules: Piece | None = None  # for the system text

    @property
    def tokens(self) -> int:
        return sum(p.tokens for p in self.pieces) + (self.rules.tokens if self.rules else 0)

    def sent(self) -> list[dict[str, object]]:
        """What context went to the model, for the answer's result."""
        return [p.sent() for p in ((self.rules,) if self.rules else ()) + self.pieces]

    def user_text(self) -> str:
        """The pieces as labelled blocks for the user message (notes included, so the model knows)."""
        blocks = []
        for piece in self.pieces:
            if piece.text:
                note = f" ({piece.note})" if piece.note else ""
                blocks.append(f"{piece.label}{note}:\n{_fenced(piece.text)}")
            elif piece.note:
                blocks.append(f"{piece.label}: {piece.note}")
        return "\n\n".join(blocks)

    def system_text(self) -> str:
        if not self.rules or not self.rules.text:
            return ""
        return f"Project rules ({self.rules.path}):\n{self.rules.text.strip()}"


def _fenced(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * max(3, longest + 1)  # a fence the text itself cannot close
    return f"{fence}\n{text.rstrip()}\n{fence}"


def cut(text: str, budget: int) -> tuple[str, bool]:
    """`text` cut at a line to at most `budget` tokens; True when something was cut."""
    limit = budget * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text, False
    head = text[:limit]
    if "\n" in head:
        head = head[: head.rindex("\n") + 1]
    return head, True


def _lines_label(path: str, first: int, last: int, what: str = "") -> str:
    span = f"line {first + 1}" if first == last else f"lines {first + 1}-{last + 1}"
    return f"{path} ({span}{', ' + what if what else ''})"


def around(text: str, line: int, budget: int) -> tuple[str, int, int]:
    """Whole lines of `text` around `line` within `budget` tokens: (text, first line, last line)."""
    lines = text.splitlines(keepends=True)
    if not lines:
        return "", 0, 0
    line = min(max(line, 0), len(lines) - 1)
    first = last = line
    used = len(lines[line])
    limit = budget * CHARS_PER_TOKEN
    below = True
    while first > 0 or last < len(lines) - 1:
        take_below = (below and last < len(lines) - 1) or first == 0
        index = last + 1 if take_below else first - 1
        if used + len(lines[index]) > limit:
            break
        used += len(lines[index])
        first, last = (first, index) if take_below else (index, last)
        below = not below
    return "".join(lines[first : last + 1]), first, last


# -- workspace files ----------------------------------------------------------------------


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives on Windows
        return False


def display_path(path: str, roots: Sequence[str]) -> str:
    """A path relative to the workspace folder that holds it, else as given."""
    real = os.path.realpath(path)
    for root in roots:
        real_root = os.path.realpath(root)
        if _inside(real, real_root):
            return os.path.relpath(real, real_root).replace(os.sep, "/")
    return path


def resolve(name: str, roots: Sequence[str]) -> tuple[str | None, str | None]:
    """(real path, None) for a file inside a workspace folder, or (None, note saying why not)."""
    if not roots:
        return None, "not read: there is no workspace folder to read it from"
    expanded = name.replace("\\", "/")
    outside = False
    for root in roots:
        real_root = os.path.realpath(root)
        candidate = os.path.realpath(os.path.join(real_root, expanded))
        if not _inside(candidate, real_root):
            outside = True
            continue
        if os.path.isfile(candidate):
            return candidate, None
        if os.path.exists(candidate):
            return None, "not read: it is not a file"
    if outside:
        return None, "refused: it is outside the workspace folders"
    return None, "not found in the workspace"


def read_text(path: str) -> tuple[str | None, str | None]:
    """(text, None), or (None, note) for a file that cannot be read as text."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_READ_BYTES)
    except OSError as exc:
        return None, f"not read: {exc.strerror or type(exc).__name__}"
    if b"\0" in data[:8192]:
        return None, "not read: it is a binary file"
    return data.decode("utf-8", "replace"), None


def mentions(text: str) -> list[str]:
    """The `@path` names in `text`, in order, without repeats."""
    names: list[str] = []
    for match in MENTION.finditer(text):
        name = match.group(1) or match.group(2)
        if name and name not in names:
            names.append(name)
    return names[:MAX_MENTIONS]


def rules(roots: Sequence[str], budget: int) -> Piece | None:
    """The workspace's rules file (`.tinyarms/rules.md` wins over `AGENTS.md`), or None."""
    for root in roots[:1]:  # the first folder is the project's root
        real_root = os.path.realpath(root)
        for name in RULES_FILES:
            candidate = os.path.realpath(os.path.join(real_root, name))
            if not (_inside(candidate, real_root) and os.path.isfile(candidate)):
                continue
            text, _ = read_text(candidate)
            if text is None or not text.strip():
                continue
            kept, was_cut = cut(text, budget)
            return Piece("rules", name, kept, path=name, note="cut to fit the budget" if was_cut else None)
    return None


# -- the whole context ----------------------------------------------------------------------


@attrs.frozen
class Where:
    """Where the request was made: the document's path and text, the range's first and last
    line (0-based), and the selected text ("" for a cursor; the LSP feature reads it with the
    client's UTF-16 columns)."""

    path: str
    text: str
    first_line: int
    last_line: int
    selection: str = ""


def gather(
    text: str,
    *,
    budget: int,
    roots: Sequence[str],
    where: Where | None = None,
    diagnostics: Sequence[Diagnostic] = (),
    use_rules: bool = True,
    include_code: bool = True,
) -> Context:
    """The context for a request `text` made at `where`, within `budget` tokens.

    `include_code=False` leaves out the selection / file piece (an edit labels the lines it
    rewrites itself, and never cuts them) but keeps the diagnostics of `where`'s range.
    """
    pieces: list[Piece] = []
    rules_piece = rules(roots, budget // 4) if use_rules else None
    left = budget - (rules_piece.tokens if rules_piece else 0)
    if where is not None:
        path = display_path(where.path, roots)
        share = max(left // 2, 1)
        if include_code and where.selection.strip():
            code, was_cut = cut(where.selection, share)
            label = _lines_label(path, where.first_line, where.last_line, "selected")
            pieces.append(Piece("selection", label, code, path=path, note="cut to fit the budget" if was_cut else None))
        elif include_code:
            code, first, last = around(where.text, where.first_line, share)
            pieces.append(Piece("file", _lines_label(path, first, last, "around the cursor"), code, path=path))
        inside = [d for d in diagnostics if where.first_line <= d.line <= where.last_line]
        if inside:
            listing = "\n".join(
                f"line {d.line + 1}: {d.severity}: {d.message}" + (f" [{d.source}]" if d.source else "")
                for d in inside
            )
            pieces.append(Piece("diagnostics", f"Diagnostics in {path}", listing, path=path))
        left -= sum(p.tokens for p in pieces)
    names = mentions(text)
    for index, name in enumerate(names):
        real, note = resolve(name, roots)
        content = None
        if real is not None:
            content, note = read_text(real)
        label = f"@{name}"
        if content is None:
            pieces.append(Piece("mention", label, "", path=name, note=note))
            continue
        share = max(left // (len(names) - index), 0)
        kept, was_cut = cut(content, share)
        shown = display_path(real or name, roots)
        pieces.append(Piece("mention", shown, kept, path=shown, note="cut to fit the budget" if was_cut else None))
        left -= tokens(kept)
    return Context(pieces=tuple(pieces), rules=rules_piece)
