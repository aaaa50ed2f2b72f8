"""Context for chat and edit: labelled pieces within a budget, confined to the workspace.

The workspaces here are hostile on purpose: `..`, absolute paths, symlinks out of the folder
(to a file and to a folder), a rules file that is a symlink to a secret, binary files.
"""

from __future__ import annotations

import inspect
import os
import textwrap

import pytest

from tinyarms.requests import context

SOURCE = inspect.getsource(textwrap)  # a real file of some size (about 20 kB)


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("def main():\n    return 42\n")
    (root / "docs").mkdir()
    (root / "docs" / "my notes.md").write_text("Remember the milk.\n")
    (root / "big.py").write_text(SOURCE)
    (root / "blob.bin").write_bytes(b"\x7fELF\0\0\0binary")
    secret = tmp_path / "outside.txt"
    secret.write_text("TOP SECRET outside the workspace\n")
    (tmp_path / "outside_dir").mkdir()
    (tmp_path / "outside_dir" / "key.txt").write_text("TOP SECRET in a folder outside\n")
    os.symlink(secret, root / "link.txt")
    os.symlink(tmp_path / "outside_dir", root / "linked_dir")
    return root


def _sent(ctx: context.Context, kind: str) -> list[dict]:
    return [p for p in ctx.sent() if p["kind"] == kind]


def test_an_existing_mentioned_file_is_sent_labelled_with_its_path(workspace):
    ctx = context.gather("what does @src/app.py return?", budget=2000, roots=[str(workspace)])
    (piece,) = _sent(ctx, "mention")
    assert piece["path"] == "src/app.py" and piece["tokens"] > 0 and "note" not in piece
    text = ctx.user_text()
    assert text.startswith("src/app.py:\n```\ndef main():") and "return 42" in text


def test_a_quoted_mention_with_spaces_and_trailing_punctuation(workspace):
    ctx = context.gather('see @"docs/my notes.md", and @src/app.py.', budget=2000, roots=[str(workspace)])
    assert [p["path"] for p in _sent(ctx, "mention")] == ["docs/my notes.md", "src/app.py"]
    assert "Remember the milk." in ctx.user_text()


@pytest.mark.parametrize(
    "mention",
    ["@../outside.txt", "@link.txt", "@linked_dir/key.txt", "@src/../../outside.txt", "@{outside}"],
)
def test_paths_that_lead_out_of_the_workspace_are_refused_with_a_note(workspace, mention):
    mention = mention.format(outside=workspace.parent / "outside.txt")
    ctx = context.gather(f"summarise {mention} please", budget=2000, roots=[str(workspace)])
    (piece,) = _sent(ctx, "mention")
    assert piece["tokens"] == 0
    assert piece["note"] == "refused: it is outside the workspace folders"
    assert "TOP SECRET" not in ctx.user_text()
    assert "outside the workspace" in ctx.user_text()  # the model is told, so it does not guess


@pytest.mark.parametrize(
    "name, note",
    [("nope.py", "not found in the workspace"), ("src", "not read: it is not a file"),
     ("blob.bin", "not read: it is a binary file")],
)  # fmt: skip
def test_a_file_that_cannot_be_sent_is_a_note_not_a_failure(workspace, name, note):
    ctx = context.gather(f"look at @{name}", budget=2000, roots=[str(workspace)])
    assert _sent(ctx, "mention") == [{"kind": "mention", "tokens": 0, "path": name, "note": note}]


def test_no_workspace_folder_reads_nothing(workspace):
    ctx = context.gather("look at @src/app.py", budget=2000, roots=[])
    assert _sent(ctx, "mention")[0]["note"].startswith("not read")


def test_an_email_address_is_not_a_mention(workspace):
    assert context.mentions("mail me at someone@src/app.py or x@y.com") == []


def test_the_selection_is_labelled_with_its_path_and_lines(workspace):
    where = context.Where(path=str(workspace / "big.py"), text=SOURCE, first_line=9, last_line=11,
                          selection="".join(SOURCE.splitlines(keepends=True)[9:12]))  # fmt: skip
    ctx = context.gather("explain", budget=2000, roots=[str(workspace)], where=where)
    (piece,) = ctx.sent()
    assert piece == {"kind": "selection", "path": "big.py", "tokens": context.tokens(where.selection)}
    assert ctx.user_text().startswith("big.py (lines 10-12, selected):\n```\n")


def test_without_a_selection_the_file_around_the_cursor_fits_the_budget(workspace):
    lines = SOURCE.splitlines(keepends=True)
    cursor = len(lines) // 2
    where = context.Where(path=str(workspace / "big.py"), text=SOURCE, first_line=cursor, last_line=cursor)
    ctx = context.gather("what is this?", budget=400, roots=[str(workspace)], where=where)
    (piece,) = ctx.pieces
    assert piece.kind == "file" and piece.tokens <= 200  # the code's share is half the budget
    assert lines[cursor] in piece.text and lines[cursor - 3] in piece.text and lines[cursor + 3] in piece.text
    assert not SOURCE.startswith(piece.text)  # not simply the top of the file
    assert "around the cursor" in piece.label


def test_a_big_mentioned_file_is_cut_and_says_so(workspace):
    ctx = context.gather("review @big.py", budget=300, roots=[str(workspace)])
    (piece,) = ctx.pieces
    assert piece.note == "cut to fit the budget" and piece.tokens <= 300
    assert piece.text.endswith("\n") and SOURCE.startswith(piece.text)


def test_diagnostics_only_inside_the_range(workspace):
    where = context.Where(path=str(workspace / "src/app.py"), text="def main():\n    return 42\n",
                          first_line=1, last_line=1, selection="    return 42\n")  # fmt: skip
    diagnostics = [context.Diagnostic(line=1, message="Unreachable code", source="pyright"),
                   context.Diagnostic(line=0, message="Missing docstring", severity="warning")]  # fmt: skip
    ctx = context.gather("/fix", budget=2000, roots=[str(workspace)], where=where, diagnostics=diagnostics)
    assert [p["kind"] for p in ctx.sent()] == ["selection", "diagnostics"]
    assert "line 2: error: Unreachable code [pyright]" in ctx.user_text()
    assert "Missing docstring" not in ctx.user_text()


def test_rules_from_agents_md_go_to_the_system_text(workspace):
    (workspace / "AGENTS.md").write_text("Use tabs. Never use print.\n")
    ctx = context.gather("hi", budget=2000, roots=[str(workspace)])
    assert ctx.system_text() == "Project rules (AGENTS.md):\nUse tabs. Never use print."
    tokens = context.tokens("Use tabs. Never use print.\n")
    assert _sent(ctx, "rules") == [{"kind": "rules", "path": "AGENTS.md", "tokens": tokens}]
    assert "Use tabs" not in ctx.user_text()


def test_tinyarms_rules_md_wins_over_agents_md(workspace):
    (workspace / "AGENTS.md").write_text("Use tabs.\n")
    (workspace / ".tinyarms").mkdir()
    (workspace / ".tinyarms" / "rules.md").write_text("Use four spaces.\n")
    ctx = context.gather("hi", budget=2000, roots=[str(workspace)])
    assert "Use four spaces." in ctx.system_text() and "tabs" not in ctx.system_text()


def test_a_rules_file_that_links_out_of_the_workspace_is_ignored(workspace):
    os.symlink(workspace.parent / "outside.txt", workspace / "AGENTS.md")
    ctx = context.gather("hi", budget=2000, roots=[str(workspace)])
    assert ctx.rules is None and ctx.system_text() == ""


def test_rules_take_at_most_a_quarter_of_the_budget(workspace):
    (workspace / "AGENTS.md").write_text("Be careful with the details.\n" * 500)
    ctx = context.gather("hi", budget=400, roots=[str(workspace)])
    assert ctx.rules is not None and ctx.rules.tokens <= 100 and ctx.rules.note == "cut to fit the budget"


def test_a_fence_inside_the_code_cannot_close_the_block():
    ctx = context.Context(pieces=(context.Piece("selection", "README.md", "```python\nx = 1\n```\n"),))
    assert ctx.user_text() == "README.md:\n````\n```python\nx = 1\n```\n````"
