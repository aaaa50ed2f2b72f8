"""Everything that writes a user's file passes through here, so no front door applies an unchecked edit.

- `extract`: a model's answer -> the replacement code (fences, chatter and explanations
  stripped, the range's indentation kept), or `Refused` with one sentence;
- `check.refusal(path, old, new)`: empty/unchanged results and introduced syntax errors
  (Python via `ast`, TypeScript/TSX/JavaScript/Rust/Go via tree-sitter; `languages`);
- `diff.text_edits(old, new)` / `diff.unified(path, old, new)`: the changed hunks only;
- `workspace`: the LSP WorkspaceEdits (a versioned text edit, a new file that never overwrites).
"""
