// Small pieces every command uses: asking for a line of text, and a selection as an LSP range.
import * as vscode from "vscode";

export type LspRange = { start: { line: number; character: number }; end: { line: number; character: number } };

/** The user's text for `title`, trimmed; undefined when they cancelled or typed nothing. */
export async function askFor(title: string, prompt: string): Promise<string | undefined> {
  const text = await vscode.window.showInputBox({ title, prompt, ignoreFocusOut: true });
  return text?.trim() ? text.trim() : undefined;
}

/** A VS Code range in the LSP shape the server's commands take (UTF-16 columns, as both count). */
export function lspRange(range: vscode.Range): LspRange {
  return {
    start: { line: range.start.line, character: range.start.character },
    end: { line: range.end.line, character: range.end.character },
  };
}
