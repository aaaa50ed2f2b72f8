"""The edit-safety package on real code: answer -> code, parse checks, minimal diffs.

Python cases use the standard library's own source files (real code nobody wrote for these
tests); the other languages use idiomatic snippets of each grammar's common constructs.
"""

from __future__ import annotations

import ast
import inspect
import json.decoder
import textwrap

import pytest
from lsprotocol import types

from tinyarms.edits import check, diff, extract, languages, workspace

PY_SOURCE = inspect.getsource(json.decoder)
TEXTWRAP_SOURCE = inspect.getsource(textwrap)

TS = """\
export interface User {
  id: number;
  name: string;
}

export async function loadUsers(url: string): Promise<User[]> {
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(`HTTP ${response.status}`);
  }
  return (await response.json()) as User[];
}

export const byName = (a: User, b: User): number => a.name.localeCompare(b.name);
"""

TSX = """\
import React from "react";

export function Greeting({ name }: { name: string }) {
  return <h1 className="greeting">Hello, {name}!</h1>;
}
"""

JS = """\
const express = require("express");

function handler(req, res) {
  const { id } = req.params;
  res.json({ id, ok: true });
}

module.exports = { handler };
"""

RUST = """\
use std::collections::HashMap;

pub struct Counter {
    counts: HashMap<String, usize>,
}

impl Counter {
    pub fn new() -> Self {
        Counter { counts: HashMap::new() }
    }

    pub fn add(&mut self, word: &str) {
        *self.counts.entry(word.to_string()).or_insert(0) += 1;
    }
}
"""

GO = """\
package main

import (
	"fmt"
	"strings"
)

func shout(s string) string {
	return strings.ToUpper(s) + "!"
}

func main() {
	fmt.Println(shout("hello"))
}
"""


# -- languages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, source",
    [("a.py", PY_SOURCE), ("b.ts", TS), ("c.tsx", TSX), ("d.js", JS), ("e.rs", RUST), ("f.go", GO)],
)
def test_real_code_parses_in_its_language(path, source):
    language = languages.for_path(path)
    assert language is not None
    assert language.problem(source) is None


@pytest.mark.parametrize(
    "path, source, broken, line",
    [
        ("m.py", PY_SOURCE, PY_SOURCE.replace("def py_scanstring(", "def py_scanstring(("), None),
        ("b.ts", TS, TS.replace("url: string)", "url: string"), 6),
        ("c.tsx", TSX, TSX.replace("</h1>", "</h2"), 4),
        ("d.js", JS, JS.replace("res.json({ id, ok: true });", "res.json({ id, ok: true );"), 5),
        ("e.rs", RUST, RUST.replace("or_insert(0) += 1;", "or_insert(0) += ;"), 13),
        ("f.go", GO, GO.replace("func main() {", "func main() "), None),
    ],
)
def test_a_broken_file_is_found_and_located(path, source, broken, line):
    problem = languages.for_path(path).problem(broken)
    assert problem is not None
    if line is not None:
        assert problem.line == line, problem
    assert str(problem).startswith(f"line {problem.line}: ")


def test_python_checks_what_the_compiler_refuses_not_only_the_grammar():
    # `return` outside a function parses (ast.parse accepts it) but Python refuses to compile it.
    assert languages.for_path("x.py").problem("x = 1\nreturn x\n") is not None
    assert languages.for_path("x.py").problem("x = 1\n") is None


def test_extensions_are_a_registry_case_insensitive():
    assert languages.for_path("file:///w/src/App.TSX").name == "TSX"
    assert languages.for_path("/w/lib.mjs").name == "JavaScript"
    assert languages.for_path("/w/README.md") is None
    assert languages.for_path("Makefile") is None
    assert {ext for lang in languages.LANGUAGES for ext in lang.extensions} == set(languages.BY_EXTENSION)


# -- check.refusal ----------------------------------------------------------------------


def test_refusal_passes_a_good_python_change_to_a_stdlib_file():
    new = PY_SOURCE.replace("    chunks = []\n", "    chunks: list[str] = []\n", 1)
    assert new != PY_SOURCE
    assert check.refusal("json/decoder.py", PY_SOURCE, new) is None


def test_refusal_names_the_language_the_file_and_the_line():
    new = PY_SOURCE.replace("    chunks = []\n", "    chunks = [\n", 1)
    reason = check.refusal("pkg/json/decoder.py", PY_SOURCE, new)
    assert reason is not None and reason.count(".") >= 1
    assert "Python" in reason and "decoder.py" in reason and "line " in reason
    assert reason.endswith("so it was not applied.")


@pytest.mark.parametrize(
    "path, old, new",
    [
        ("src/api.ts", TS, TS.replace("): Promise<User[]> {", "): Promise<User[]> {{")),
        ("src/lib.rs", RUST, RUST.replace("pub fn new() -> Self {", "pub fn new() -> Self")),
        ("main.go", GO, GO.replace('"strings"\n)', '"strings"\n')),
        ("app.js", JS, JS.replace("function handler(req, res) {", "function handler(req, res {")),
    ],
)
def test_tree_sitter_refuses_an_edit_that_breaks_parsing(path, old, new):
    reason = check.refusal(path, old, new)
    assert reason is not None and "syntax" in reason, reason


@pytest.mark.parametrize(
    "path, old, new",
    [
        ("src/api.ts", TS, TS.replace("const response", "const res").replace("response.", "res.")),
        ("src/lib.rs", RUST, RUST.replace("word: &str", "w: &str").replace("word.to_string()", "w.to_string()")),
        ("main.go", GO, GO.replace('"hello"', '"tinyarms"')),
    ],
)
def test_tree_sitter_passes_a_valid_edit(path, old, new):
    assert old != new
    assert check.refusal(path, old, new) is None


def test_a_file_that_did_not_parse_before_is_not_held_against_the_edit():
    old = "def f(:\n    return 1\n"
    assert check.refusal("x.py", old, "def f(:\n    return 2\n") is None
    assert check.refusal("x.py", old, "def f():\n    return 2\n") is None


def test_empty_and_unchanged_are_refused_in_any_language():
    assert "empty" in check.refusal("notes.txt", "some text\n", "  \n")
    assert "as it is" in check.refusal("notes.txt", "a\nb\n", "a  \nb\n\n")
    assert "as it is" in check.refusal("x.rs", RUST, RUST)
    assert check.refusal("notes.txt", "a\n", "b\n") is None  # no parser: only empty/unchanged


# -- diff -------------------------------------------------------------------------------


def test_text_edits_cover_only_the_changed_lines_of_a_real_file():
    old = TEXTWRAP_SOURCE
    new = old.replace("        self.width = width\n", "        self.width = int(width)\n", 1)
    new = new.replace("    return w.fill(text)\n", "    return w.fill(text).rstrip()\n", 1)
    edits = diff.text_edits(old, new)
    assert len(edits) == 2
    changed = {i for i, (a, b) in enumerate(zip(old.splitlines(), new.splitlines(), strict=True)) if a != b}
    assert {e.range.start.line for e in edits} == changed
    for e in edits:
        assert e.range.end == types.Position(line=e.range.start.line + 1, character=0)
    assert diff.apply(old, edits) == new


@pytest.mark.parametrize(
    "old, new",
    [
        ("a\nb\nc\n", "a\nB\nc\n"),
        ("a\nb\nc", "a\nb\nC"),  # last line without a newline
        ("a\nb\nc", "a\nb\nc\nd"),
        ("", "x\n"),
        ("x\n", ""),
        ("a\r\nb\r\n", "a\r\nbb\r\n"),  # CRLF
        ("a\rb\r", "a\rB\r"),  # old Mac line ends
        ("é😀x\n😀y", "é😀x\n😀z"),  # UTF-16 columns: the emoji is two code units
        ("a\x0cb\nc\n", "a\x0cB\nc\n"),  # a form feed is not a line break in LSP
        ("keep\n" * 50 + "tail", "keep\n" * 20 + "new\n" + "keep\n" * 30 + "tail!"),
    ],
)
def test_text_edits_round_trip(old, new):
    edits = diff.text_edits(old, new)
    assert diff.apply(old, edits) == new
    assert diff.text_edits(new, new) == []


def test_the_end_of_a_last_line_without_newline_is_a_utf16_column():
    edits = diff.text_edits("a\n😀b", "a\n😀c")
    assert edits[0].range.start == types.Position(line=1, character=0)
    assert edits[0].range.end == types.Position(line=1, character=3)


def test_unified_diff_is_git_style_and_small():
    old = TEXTWRAP_SOURCE
    new = old.replace("        self.width = width\n", "        self.width = int(width)\n", 1)
    text = diff.unified("Lib/textwrap.py", old, new)
    lines = text.splitlines()
    assert lines[0] == "--- a/Lib/textwrap.py" and lines[1] == "+++ b/Lib/textwrap.py"
    assert lines[2].startswith("@@ ")
    assert [line for line in lines if line.startswith(("+", "-"))][2:] == [
        "-        self.width = width",
        "+        self.width = int(width)",
    ]
    assert len(lines) == 3 + 3 + 2 + 3  # headers, one hunk: three lines of context either side
    assert diff.unified("x", "a", "a") == ""
    assert diff.unified("x", "a", "b").endswith("+b\n\\ No newline at end of file\n")


# -- extract ----------------------------------------------------------------------------

METHOD = '''\
    def close(self):
        if self._file is not None:
            self._file.close()
        self._file = None
'''

METHOD_NEW = '''\
def close(self):
    """Close the underlying file, once."""
    if self._file is not None:
        self._file.close()
    self._file = None
'''


def _in_class(body: str) -> str:
    return f"class Reader:\n    _file = None\n\n{body}\n    def read(self):\n        return self._file.read()\n"


@pytest.mark.parametrize(
    "answer",
    [
        f"```python\n{METHOD_NEW}```\n",
        f"Here is the documented method:\n\n```python\n{METHOD_NEW}```\n\nI added a docstring that says what it does.",
        f"Sure! Here's the updated code:\n\n{METHOD_NEW}\nThis version documents the method.\n",
        f"{METHOD_NEW}\nExplanation: the docstring states that closing twice is safe.\n",
        f"~~~py\n{METHOD_NEW}~~~",
        f"```python\n{METHOD_NEW}",  # cut off by the token limit: no closing fence
        f"Before:\n```python\n{textwrap.dedent(METHOD)}```\nAfter:\n```python\n{METHOD_NEW}```\n",
        textwrap.indent(METHOD_NEW, "        "),  # over-indented
    ],
)
def test_replacement_takes_the_code_and_keeps_the_range_indentation(answer):
    code = extract.replacement(answer, METHOD, path="reader.py")
    assert code == textwrap.indent(METHOD_NEW, "    ")
    ast.parse(_in_class(code))


def test_replacement_keeps_crlf_and_a_missing_final_newline():
    original = "    x = 1\r\n    y = 2"
    assert extract.replacement("```\nx = 1\ny = 3\n```", original) == "    x = 1\r\n    y = 3"


def test_replacement_of_a_blank_insertion_point_uses_the_given_indent():
    code = extract.replacement("```go\nreturn nil\n```", "", path="x.go", indent="\t")
    assert code == "\treturn nil\n"


def test_code_that_starts_like_chatter_is_kept():
    assert extract.replacement("result = compute()\nreturn result", "x = 1\n") == "result = compute()\nreturn result\n"


@pytest.mark.parametrize(
    "answer, words",
    [
        ("", "no code"),
        ("```python\n```", "no code"),
        ("   \n\n", "no code"),
        (f"```python\n{METHOD}```", "same as the selected code"),
        (f"Here you go:\n{textwrap.dedent(METHOD)}", "same as the selected code"),
        ("```\nI cannot change this code because it is already correct and clear.\n```", "in words"),
        ("I am sorry, but this code looks fine to me as it is written.", "in words"),
    ],
)
def test_replacement_refuses_with_one_sentence(answer, words):
    with pytest.raises(extract.Refused) as info:
        extract.replacement(answer, METHOD, path="reader.py")
    reason = info.value.reason
    assert words in reason
    assert reason.endswith(".") and reason.count(". ") == 0


def test_prose_is_fine_where_prose_is_the_text():
    original = "This project parses things and prints them nicely.\n"
    new = extract.replacement("```\nThis project parses files and prints them as tables.\n```", original)
    assert new == "This project parses files and prints them as tables.\n"


def test_fenced_prose_in_a_python_file_fails_the_parse_check_too():
    # A block of words that the prose test lets through (it looks like a call) still cannot reach the file.
    code = extract.replacement("```\nprint the result(s) nicely please\n```", METHOD, path="r.py")
    new_file = _in_class(code)
    assert check.refusal("r.py", _in_class(METHOD), new_file) is not None


# -- workspace --------------------------------------------------------------------------


def _caps(document_changes: bool, operations: list[types.ResourceOperationKind]) -> types.ClientCapabilities:
    edit = types.WorkspaceEditClientCapabilities(document_changes=document_changes, resource_operations=operations)
    return types.ClientCapabilities(workspace=types.WorkspaceClientCapabilities(workspace_edit=edit))


def test_document_edit_is_versioned_when_the_client_can_check_versions():
    old, new = "a\nb\nc\n", "a\nB\nc\n"
    edit = workspace.document_edit("file:///w/x.py", 7, old, new, _caps(True, []))
    (change,) = edit.document_changes
    assert change.text_document.version == 7 and change.text_document.uri == "file:///w/x.py"
    assert diff.apply(old, change.edits) == new
    plain = workspace.document_edit("file:///w/x.py", 7, old, new, _caps(False, []))
    assert plain.document_changes is None and diff.apply(old, plain.changes["file:///w/x.py"]) == new


def test_a_new_file_never_overwrites_and_needs_create_support():
    edit = workspace.new_file("file:///w/tests/test_x.py", "def test_x():\n    pass\n")
    create, text = edit.document_changes
    assert create.options.overwrite is False and create.options.ignore_if_exists is False
    assert text.edits[0].new_text.startswith("def test_x")
    assert workspace.can_create(_caps(True, [types.ResourceOperationKind.Create]))
    assert not workspace.can_create(_caps(True, [types.ResourceOperationKind.Rename]))
    assert workspace.can_create(_caps(False, [types.ResourceOperationKind.Create]))  # Neovim 0.11 announces only this
    assert workspace.supports_document_changes(_caps(False, [types.ResourceOperationKind.Create]))
    assert not workspace.can_create(None)
