// Ask and Explain Selection: one request shape (`tinyarms.ask`), answers streamed into a
// read-only document beside the code. (Chat, edits and the agent have their own modules.)
import * as path from "node:path";
import * as vscode from "vscode";

import { Documents } from "./documents";
import { Decision } from "./protocol";
import { Server } from "./server";
import { StatusItem } from "./status";
import { askFor, LspRange, lspRange } from "./ui";

interface AskResult {
  text?: string;
  decision?: Decision;
  trace?: Record<string, unknown>;
}

export interface AskRequest {
  text: string;
  role?: string;
  title: string;
  editor?: vscode.TextEditor;
  selection?: vscode.Selection;
}

export class Asker {
  private counter = 0;

  constructor(
    private readonly server: Server,
    private readonly docs: Documents,
    private readonly status: StatusItem,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  /** Send one request; stream its answer into a new document; return the final result. */
  async ask(request: AskRequest): Promise<{ result?: AskResult; uri: vscode.Uri }> {
    this.counter += 1;
    const streamId = `vscode-${process.pid}-${this.counter}`;
    const uri = this.docs.create(`${slug(request.title)}.md`, `# ${request.title}\n\n`);
    await this.docs.open(uri, true);
    let streamed = "";
    const header = this.docs.text(uri);
    const subscription = this.server.onStream(streamId, (event) => {
      if (event.restart) {
        // A fallback tier starts the answer again: clear what was shown, say why.
        streamed = "";
        this.docs.set(uri, `${header}_(restarted: ${event.reason ?? "fallback"})_\n\n`);
      } else if (event.delta) {
        streamed += event.delta;
        this.docs.append(uri, event.delta);
      }
    });
    const args: Record<string, unknown> = { text: request.text, stream_id: streamId };
    if (request.role) {
      args.role = request.role;
    }
    const started = Date.now();
    if (request.editor) {
      args.uri = request.editor.document.uri.toString();
      if (request.selection && !request.selection.isEmpty) {
        args.range = lspRange(request.selection);
      }
    }
    try {
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Window, title: `tinyarms: ${request.title}` },
        () => this.server.execute<AskResult>("tinyarms.ask", args),
      );
      if (!streamed && result?.text) {
        this.docs.append(uri, result.text);
      } else if (!streamed) {
        this.docs.append(uri, "_(no answer text: the server reported the decision only)_");
      }
      if (result?.decision) {
        // An answer cut off inside a code block (max_tokens) would swallow the footer.
        const unclosed = (this.docs.text(uri).match(/^```/gm) ?? []).length % 2 === 1;
        this.docs.append(uri, `${unclosed ? "\n```" : ""}\n\n---\n${describe(result.decision)}\n`);
        this.status.answer(result.decision, Date.now() - started);
      }
      return { result, uri };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.log.error(`${request.title}: ${message}`);
      this.docs.append(uri, `\n\n**tinyarms could not answer:** ${message}\n`);
      void vscode.window.showErrorMessage(`tinyarms: ${request.title} failed: ${message}`);
      return { uri };
    } finally {
      subscription.dispose();
    }
  }

  /**
   * The command. With an argument (a code action of an older server: `{text, uri, range}`)
   * it asks that at once, about that range; else it asks for the question.
   */
  async askCommand(args?: { text?: string; uri?: string; range?: LspRange }): Promise<void> {
    if (args && typeof args.text === "string" && args.text.trim()) {
      await this.askAbout(args.text, args.uri, args.range);
      return;
    }
    const editor = vscode.window.activeTextEditor;
    const text = await askFor(
      "tinyarms: Ask",
      "A question or request; it is routed to chat, edit or agent (start with /explain, /fix, ... to choose)",
    );
    if (!text) {
      return;
    }
    const selection = editor?.selection;
    const body = selection && !selection.isEmpty ? `${text}\n\n${fenced(editor, selection)}` : text;
    await this.ask({ text: body, title: text, editor, selection });
  }

  private async askAbout(text: string, uri?: string, range?: LspRange): Promise<void> {
    const editor = vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === uri);
    const selection = range
      ? new vscode.Selection(range.start.line, range.start.character, range.end.line, range.end.character)
      : undefined;
    const body = editor && selection && !selection.isEmpty ? `${text}\n\n${fenced(editor, selection)}` : text;
    await this.ask({ text: body, title: text.split("\n")[0].slice(0, 60), editor, selection });
  }

  async explainSelection(): Promise<void> {
    const editor = requireSelection("Explain Selection");
    if (!editor) {
      return;
    }
    const name = path.basename(editor.document.uri.path);
    await this.ask({
      text: `/explain this code from ${name}:\n${fenced(editor, editor.selection)}`,
      title: `Explain ${name}:${lines(editor.selection)}`,
      editor,
      selection: editor.selection,
    });
  }
}

function requireSelection(what: string): vscode.TextEditor | undefined {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.selection.isEmpty) {
    void vscode.window.showWarningMessage(`tinyarms: ${what} needs some selected code.`);
    return undefined;
  }
  return editor;
}

/** "4-7" for a selection from line 4 to the start of line 8 (1-based, as shown). */
function lines(selection: vscode.Selection): string {
  const { start, end } = selection;
  const last = end.character === 0 && end.line > start.line ? end.line : end.line + 1;
  return `${start.line + 1}-${last}`;
}

function fenced(editor: vscode.TextEditor, selection: vscode.Selection): string {
  const code = editor.document.getText(selection);
  const fence = code.includes("```") ? "````" : "```";
  return `${fence}${editor.document.languageId}\n${code}\n${fence}`;
}

export function describe(d: Decision): string {
  const parts = [`route **${d.route ?? "none"}**`, `role ${d.role}`, `tier ${d.tier}`];
  if (d.stage) {
    parts.push(`stage ${d.stage}`);
  }
  if (typeof d.score === "number") {
    parts.push(`score ${d.score.toFixed(2)}`);
  }
  return `tinyarms decision: ${parts.join(" · ")}${d.reason ? `\n\n${d.reason}` : ""}`;
}

function slug(title: string): string {
  return (
    title
      .replace(/[^\w.:-]+/g, " ")
      .trim()
      .slice(0, 60)
      .replace(/\s+/g, "-") || "answer"
  );
}
