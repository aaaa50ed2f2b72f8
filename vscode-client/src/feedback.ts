// Acceptance feedback for inline completions (`tinyarms.autocomplete.feedback`).
//
// VS Code's stable API (checked up to @types/vscode 1.140) has no "shown" or "partially
// accepted" hook for an inline completion provider (those are the proposed
// inlineCompletionsAdditions API, which a VSIX cannot enable), and vscode-languageclient
// 10 offers only `provideInlineCompletionItems` as middleware. So:
// - accepted: every item carries the server's own command ({id, event: "accepted"}); VS Code
//   runs it when Tab accepts the whole item, and `tinyarms.autocomplete.feedback` (below)
//   forwards it to the server;
// - shown: the first item of a non-empty answer handed to the editor for the cursor's
//   position (VS Code shows the first matching item);
// - partial: VS Code's own "Accept Word" / "Accept Line" (Ctrl+Right, the hover toolbar)
//   insert the start of the suggestion in one change: a single insertion at the cursor of two
//   or more characters that are the next characters of the shown suggestion is a partial
//   accept; `accepted_length` counts everything accepted so far (one-character steps count as
//   typing, which a user cannot be told apart from);
// - dismissed: Escape while the suggestion shows (a keybinding on `inlineSuggestionVisible`
//   that hides it as VS Code's own does, and reports it).
import * as vscode from "vscode";

import { FEEDBACK, FeedbackArgs } from "./protocol";

interface Shown {
  id: string;
  uri: string;
  /** Where the suggestion's next character goes (moves as parts are accepted). */
  offset: number;
  /** The suggestion's text not yet accepted. */
  rest: string;
  accepted: number;
  done: boolean;
}

/** The feedback id the server put in an item's command, if any. */
export function feedbackId(item: vscode.InlineCompletionItem): string | undefined {
  const command = item.command;
  if (!command || command.command !== FEEDBACK) {
    return undefined;
  }
  const arg = command.arguments?.[0] as Partial<FeedbackArgs> | undefined;
  return typeof arg?.id === "string" ? arg.id : undefined;
}

export class Feedback implements vscode.Disposable {
  private shown?: Shown;
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(
    private readonly send: (args: FeedbackArgs) => Promise<unknown>,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.subscriptions.push(
      vscode.workspace.onDidChangeTextDocument((event) => this.changed(event)),
      vscode.commands.registerCommand(FEEDBACK, (args?: FeedbackArgs) => this.forward(args)),
      vscode.commands.registerCommand("tinyarms.dismissInlineSuggestion", () => this.dismiss()),
    );
  }

  /** The answer the editor got for `position`: its first item counts as shown. */
  answered(
    document: vscode.TextDocument,
    position: vscode.Position,
    result: vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined,
  ): void {
    const items = Array.isArray(result) ? result : result?.items;
    const item = items?.[0];
    const id = item && feedbackId(item);
    if (!item || !id || typeof item.insertText !== "string") {
      return;
    }
    if (this.shown && this.shown.id === id) {
      return; // the same suggestion asked again (a re-ask after a partial accept)
    }
    // The item may replace a range that starts before the cursor (the typed word): what the
    // user has not typed yet starts at the cursor.
    const start = item.range ? item.range.start : position;
    const typed = document.getText(new vscode.Range(start, position));
    const rest = item.insertText.startsWith(typed) ? item.insertText.slice(typed.length) : item.insertText;
    this.shown = { id, uri: document.uri.toString(), offset: document.offsetAt(position), rest, accepted: 0, done: false };
    this.report({ id, event: "shown" });
  }

  private changed(event: vscode.TextDocumentChangeEvent): void {
    const shown = this.shown;
    if (!shown || shown.done || event.document.uri.toString() !== shown.uri || event.contentChanges.length !== 1) {
      return;
    }
    const change = event.contentChanges[0];
    const inserted = change.text;
    if (
      change.rangeLength === 0 &&
      change.rangeOffset === shown.offset &&
      inserted.length >= 2 &&
      shown.rest.startsWith(inserted)
    ) {
      shown.accepted += inserted.length;
      shown.offset += inserted.length;
      shown.rest = shown.rest.slice(inserted.length);
      if (shown.rest) {
        this.report({ id: shown.id, event: "partial", accepted_length: shown.accepted });
      } else {
        // The last part (or Tab on a suggestion at the cursor): all of it; the item's own
        // command, if it follows, is not counted twice.
        shown.done = true;
        this.report({ id: shown.id, event: "accepted" });
      }
    }
  }

  private async dismiss(): Promise<void> {
    await vscode.commands.executeCommand("editor.action.inlineSuggest.hide");
    const shown = this.shown;
    if (shown && !shown.done) {
      shown.done = true;
      this.report({ id: shown.id, event: "dismissed" });
    }
  }

  /** The item's own command (Tab accepted the whole suggestion). */
  private async forward(args?: FeedbackArgs): Promise<void> {
    if (!args || typeof args.id !== "string") {
      return;
    }
    if (this.shown?.id === args.id) {
      if (this.shown.done && args.event === "accepted") {
        return; // already counted from the document change
      }
      this.shown.done = true;
    }
    await this.report(args);
  }

  private async report(args: FeedbackArgs): Promise<void> {
    try {
      await this.send(args);
      this.log.debug(`autocomplete feedback: ${JSON.stringify(args)}`);
    } catch (err) {
      // Feedback never gets in the way of typing: an old server without the command, a restart.
      this.log.debug(`autocomplete feedback ${args.event} not recorded: ${err}`);
    }
  }

  dispose(): void {
    for (const s of this.subscriptions) {
      s.dispose();
    }
  }
}
