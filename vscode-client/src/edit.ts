// Edits with a preview: `tinyarms.edit` with preview: true returns the proposed WorkspaceEdit
// (already checked by the server: it parses, it is a minimal diff, the version matched);
// this opens a diff editor (current file vs proposed) with Accept and Reject, in the
// editor's title bar and in a notification. Accept applies the WorkspaceEdit with VS Code's
// own applyEdit (one undo step: Ctrl+Z once restores the file); Reject drops it. Either way
// the server hears which (`tinyarms.feedback {trace_id, outcome}`): it cannot see the choice.
import * as path from "node:path";
import * as vscode from "vscode";

import { sendOutcome } from "./answers";
import { Documents } from "./documents";
import { decisionLine, EditResult } from "./protocol";
import { Server } from "./server";
import { StatusItem } from "./status";
import { askFor, LspRange, lspRange } from "./ui";

export interface EditArgs {
  uri: string;
  range: LspRange;
  instruction: string;
  version?: number;
}

interface Pending {
  instruction: string;
  edit: vscode.WorkspaceEdit;
  /** Each changed document's version when the proposal was made. */
  versions: Map<string, number>;
  proposed: vscode.Uri[];
  decision: string;
  /** The proposal's trace id, for the accepted / rejected outcome. */
  traceId?: string;
  settle: (accepted: boolean) => void;
}

const PENDING_CONTEXT = "tinyarms.editPending";

export class EditFlow implements vscode.Disposable {
  private pending?: Pending;

  constructor(
    private readonly server: Server,
    private readonly docs: Documents,
    private readonly status: StatusItem,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  /** "Edit Selection…": ask for the instruction, then `run`. */
  async editSelection(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor || editor.selection.isEmpty) {
      void vscode.window.showWarningMessage("tinyarms: Edit Selection needs some selected code.");
      return;
    }
    const instruction = await askFor(
      "tinyarms: Edit Selection",
      "How should the selected code change? (you will see the change before it is applied)",
    );
    if (!instruction) {
      return;
    }
    await this.run({
      uri: editor.document.uri.toString(),
      range: lspRange(editor.selection),
      instruction,
      version: editor.document.version,
    });
  }

  /** Ask for a proposal, show it as a diff, wait for Accept or Reject. Returns whether it was applied. */
  async run(args: EditArgs): Promise<boolean> {
    if (this.pending) {
      this.pending.settle(false); // a new proposal replaces one still waiting (no verdict on it)
    }
    const uri = vscode.Uri.parse(args.uri);
    const document = await vscode.workspace.openTextDocument(uri);
    const version = args.version ?? document.version;
    const started = Date.now();
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `tinyarms: editing (${args.instruction})`, cancellable: true },
      (_progress, token) =>
        this.server.execute<EditResult>("tinyarms.edit", { ...args, version, preview: true }, token),
    );
    const elapsed = Date.now() - started;
    if (result.decision) {
      this.status.answer(result.decision, elapsed, result.decision.cost_usd);
    }
    if (result.applied) {
      // A server that applied it itself (through workspace/applyEdit, so Ctrl+Z undoes it).
      void vscode.window.setStatusBarMessage(`tinyarms: applied "${args.instruction}"`, 5000);
      return true;
    }
    if (result.refused || !result.edit) {
      const why = result.refused ?? "the server proposed no change";
      this.log.warn(`tinyarms.edit refused: ${why}`);
      void vscode.window.showWarningMessage(`tinyarms: the edit was not offered: ${why}`);
      return false;
    }
    const client = this.server.languageClient;
    if (!client) {
      throw new Error("the tinyarms server stopped");
    }
    const edit = await client.protocol2CodeConverter.asWorkspaceEdit(result.edit);
    const versions = new Map<string, number>();
    const proposed: vscode.Uri[] = [];
    for (const [target, textEdits] of edit.entries()) {
      const current = await openIfExists(target);
      if (current) {
        versions.set(target.toString(), target.toString() === uri.toString() ? version : current.version);
      }
      const before = current?.getText() ?? "";
      const after = applyTextEdits(before, textEdits, current);
      const right = this.docs.create(`proposed/${path.basename(target.path)}`, after);
      proposed.push(right);
      const left = current ? target : this.docs.create(`new/${path.basename(target.path)}`, "");
      await vscode.commands.executeCommand(
        "vscode.diff",
        left,
        right,
        `tinyarms: ${args.instruction} — ${path.basename(target.path)} (current ↔ proposed)`,
        { preview: false },
      );
    }
    const line = decisionLine(result.decision, elapsed, result.decision?.cost_usd);
    const accepted = new Promise<boolean>((resolve) => {
      this.pending = {
        instruction: args.instruction,
        edit,
        versions,
        proposed,
        decision: line,
        traceId: result.trace?.id,
        settle: resolve,
      };
    });
    await vscode.commands.executeCommand("setContext", PENDING_CONTEXT, true);
    void vscode.window
      .showInformationMessage(`tinyarms: ${args.instruction}: accept the proposed change? (${line})`, "Accept", "Reject")
      .then((pick) => {
        if (pick === "Accept") {
          void vscode.commands.executeCommand("tinyarms.acceptEdit");
        } else if (pick === "Reject") {
          void vscode.commands.executeCommand("tinyarms.rejectEdit");
        }
      });
    return accepted;
  }

  async accept(): Promise<void> {
    const pending = this.pending;
    if (!pending) {
      void vscode.window.showInformationMessage("tinyarms: no proposed edit is waiting.");
      return;
    }
    for (const [uri, version] of pending.versions) {
      const document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri);
      if (document && document.version !== version) {
        await this.finish(pending, false);
        void vscode.window.showWarningMessage(
          `tinyarms: ${path.basename(document.uri.path)} changed since the proposal; nothing was applied (run the edit again).`,
        );
        return;
      }
    }
    const applied = await vscode.workspace.applyEdit(pending.edit);
    await this.finish(pending, applied);
    if (applied) {
      await sendOutcome(this.server, pending.traceId, "accepted", this.log);
    }
    if (applied) {
      const first = pending.edit.entries()[0]?.[0];
      if (first) {
        await vscode.window.showTextDocument(first, { preview: false });
      }
      void vscode.window.setStatusBarMessage(`tinyarms: applied "${pending.instruction}" (${pending.decision})`, 5000);
    } else {
      void vscode.window.showErrorMessage("tinyarms: VS Code could not apply the edit; nothing changed.");
    }
  }

  async reject(): Promise<void> {
    const pending = this.pending;
    if (pending) {
      await this.finish(pending, false);
      await sendOutcome(this.server, pending.traceId, "rejected", this.log);
    }
  }

  private async finish(pending: Pending, applied: boolean): Promise<void> {
    if (this.pending === pending) {
      this.pending = undefined;
      await vscode.commands.executeCommand("setContext", PENDING_CONTEXT, false);
    }
    const proposed = new Set(pending.proposed.map((u) => u.toString()));
    const tabs = vscode.window.tabGroups.all
      .flatMap((group) => group.tabs)
      .filter((tab) => tab.input instanceof vscode.TabInputTextDiff && proposed.has(tab.input.modified.toString()));
    await vscode.window.tabGroups.close(tabs);
    pending.settle(applied);
  }

  dispose(): void {
    if (this.pending) {
      this.pending.settle(false);
    }
  }
}

async function openIfExists(uri: vscode.Uri): Promise<vscode.TextDocument | undefined> {
  try {
    return await vscode.workspace.openTextDocument(uri);
  } catch {
    return undefined; // a file the edit creates
  }
}

/** The text after `edits` (non-overlapping, as LSP requires), applied from the end. */
export function applyTextEdits(text: string, edits: vscode.TextEdit[], document?: vscode.TextDocument): string {
  const offsets = edits.map((e) => ({
    start: document ? document.offsetAt(e.range.start) : 0,
    end: document ? document.offsetAt(e.range.end) : 0,
    text: e.newText,
  }));
  offsets.sort((a, b) => b.start - a.start || b.end - a.end);
  let result = text;
  for (const { start, end, text: replacement } of offsets) {
    result = result.slice(0, start) + replacement + result.slice(end);
  }
  return result;
}
