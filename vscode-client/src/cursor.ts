// Where the cursor settles, for autocomplete's prefill (`tinyarms/cursorMoved`,
// server/tinyarms/protocol.py). LSP has no cursor notification, and the first completion at
// a new place costs a cold prompt (~0.7 s on 2 cores) that only the user's pause after moving
// there can hide: the server evaluates it ahead when told where the cursor is.
//
// Sent for documents the server handles, for one empty selection (a cursor, not a range),
// after the cursor has rested SETTLE_MS (a held arrow key sends nothing until it stops; the
// server waits a little more and skips places it has evaluated already). Moves made by
// typing are left out: the server sees those edits in didChange.
import * as vscode from "vscode";

import { CURSOR_MOVED, CursorMovedParams } from "./protocol";

const SETTLE_MS = 100;

export class CursorReporter implements vscode.Disposable {
  private timer?: ReturnType<typeof setTimeout>;
  private readonly subscription: vscode.Disposable;

  constructor(
    private readonly send: (params: CursorMovedParams) => void,
    private readonly selector: vscode.DocumentSelector,
  ) {
    this.subscription = vscode.window.onDidChangeTextEditorSelection((event) => this.moved(event));
  }

  private moved(event: vscode.TextEditorSelectionChangeEvent): void {
    if (event.kind === undefined) {
      return; // an edit moved it: didChange tells the server
    }
    const document = event.textEditor.document;
    const [selection] = event.selections;
    if (event.selections.length !== 1 || !selection.isEmpty || vscode.languages.match(this.selector, document) === 0) {
      return;
    }
    clearTimeout(this.timer);
    const params: CursorMovedParams = {
      textDocument: { uri: document.uri.toString() },
      position: { line: selection.active.line, character: selection.active.character },
    };
    this.timer = setTimeout(() => this.send(params), SETTLE_MS);
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.subscription.dispose();
  }
}
