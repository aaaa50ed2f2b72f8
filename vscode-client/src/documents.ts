// Read-only virtual documents: streamed answers, the effective config, stats.
//
// Why a virtual document and not a webview for answers: it is a normal editor tab, so
// search, copy, split view, themes, screen readers and Markdown preview all work with no
// HTML/CSP of our own; it behaves the same in desktop VS Code, code-server and remote
// windows; and it cannot be edited by mistake (the provider owns the text). Streaming is
// cheap: each `tinyarms/stream` delta appends to a string and fires onDidChange, which
// VS Code coalesces; we throttle it further to keep redraws below ~20 per second.
import * as vscode from "vscode";

export const SCHEME = "tinyarms";

export class Documents implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly texts = new Map<string, string>();
  private readonly emitter = new vscode.EventEmitter<vscode.Uri>();
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private counter = 0;
  readonly onDidChange = this.emitter.event;

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? "";
  }

  /** A new document named `name` (its extension picks the language); returns its URI. */
  create(name: string, text: string): vscode.Uri {
    this.counter += 1;
    const uri = vscode.Uri.from({ scheme: SCHEME, path: `/${this.counter}/${name}` });
    this.texts.set(uri.toString(), text);
    return uri;
  }

  set(uri: vscode.Uri, text: string): void {
    this.texts.set(uri.toString(), text);
    this.changed(uri, true);
  }

  append(uri: vscode.Uri, text: string): void {
    this.texts.set(uri.toString(), (this.texts.get(uri.toString()) ?? "") + text);
    this.changed(uri, false);
  }

  text(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? "";
  }

  async open(uri: vscode.Uri, beside = false): Promise<vscode.TextEditor> {
    const doc = await vscode.workspace.openTextDocument(uri);
    return vscode.window.showTextDocument(doc, {
      preview: false,
      preserveFocus: beside,
      viewColumn: beside ? vscode.ViewColumn.Beside : undefined,
    });
  }

  private changed(uri: vscode.Uri, now: boolean): void {
    const key = uri.toString();
    if (now) {
      clearTimeout(this.pending.get(key));
      this.pending.delete(key);
      this.emitter.fire(uri);
      return;
    }
    if (!this.pending.has(key)) {
      this.pending.set(
        key,
        setTimeout(() => {
          this.pending.delete(key);
          this.emitter.fire(uri);
        }, 50),
      );
    }
  }

  dispose(): void {
    for (const timer of this.pending.values()) {
      clearTimeout(timer);
    }
    this.emitter.dispose();
  }
}
