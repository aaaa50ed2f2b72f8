// "tinyarms: Agent…": one `tinyarms.agent` run with a cancellable progress notification
// (each $/progress report is a step; Cancel sends `tinyarms.agent.cancel`), the steps in a
// read-only report tab, and at the end the changed files in the "Agent" view and an Undo
// button (`tinyarms.agent.undo`: the server restores every file byte for byte).
//
// The agent writes through workspace/applyEdit, so its changes show in the editor. VS Code
// leaves such an edit unsaved; the agent's next step reads the file from disk, so while a
// run (or its undo) is in progress the documents it changed are saved at once, unless they
// had unsaved changes of the user's before.
import * as path from "node:path";
import * as vscode from "vscode";
import type { ApplyWorkspaceEditParams } from "vscode-languageclient/node";

import { Documents } from "./documents";
import { AgentFile, AgentResult, formatCost } from "./protocol";
import { ProgressValue, Server } from "./server";
import { StatusItem } from "./status";
import { askFor, LspRange, lspRange } from "./ui";

export interface AgentArgs {
  goal: string;
  uri?: string;
  range?: LspRange;
}

interface LastRun {
  run: string;
  goal: string;
  files: AgentFile[];
  stopped: string;
  undone: boolean;
  report: vscode.Uri;
}

const UNDO_CONTEXT = "tinyarms.agentCanUndo";

export class AgentRunner implements vscode.TreeDataProvider<AgentFile | string>, vscode.Disposable {
  private active = 0; // runs or undos in progress: their applied edits get saved
  private counter = 0;
  private last?: LastRun;
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(
    private readonly server: Server,
    private readonly docs: Documents,
    private readonly status: StatusItem,
    private readonly log: vscode.LogOutputChannel,
  ) {
    server.hooks.editApplied = (params, applied, dirtyBefore) => this.editApplied(params, applied, dirtyBefore);
  }

  /** The command: with an argument (a chat action), run it; else ask for the goal. */
  async command(args?: Partial<AgentArgs>): Promise<void> {
    if (args && typeof args.goal === "string" && args.goal.trim()) {
      await this.run({ goal: args.goal, uri: args.uri, range: args.range });
      return;
    }
    const editor = vscode.window.activeTextEditor;
    const goal = await askFor(
      "tinyarms: Agent",
      "A multi-step or multi-file task; you can cancel it, and undo everything it changed",
    );
    if (!goal) {
      return;
    }
    const request: AgentArgs = { goal };
    if (editor && editor.document.uri.scheme === "file") {
      request.uri = editor.document.uri.toString();
      if (!editor.selection.isEmpty) {
        request.range = lspRange(editor.selection);
      }
    }
    await this.run(request);
  }

  async run(args: AgentArgs): Promise<AgentResult | undefined> {
    this.counter += 1;
    const run = `vscode-${process.pid}-${Date.now()}-${this.counter}`;
    const report = this.docs.create(`agent-${this.counter}.md`, `# tinyarms agent: ${args.goal}\n\nrun \`${run}\`\n\n`);
    const started = Date.now();
    let steps = 0;
    this.active += 1;
    let result: AgentResult | undefined;
    try {
      result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `tinyarms agent: ${args.goal}`, cancellable: true },
        async (progress, token) => {
          const cancelled = token.onCancellationRequested(() => {
            this.docs.append(report, "\n_cancel requested_\n");
            this.server.execute("tinyarms.agent.cancel", { run }).catch((err) => this.log.warn(`agent cancel: ${err}`));
          });
          try {
            return await this.server.executeWithProgress<AgentResult>(
              "tinyarms.agent",
              { ...args, run },
              (value: ProgressValue) => {
                const message = value.kind === "end" ? value.message : (value as { message?: string }).message;
                if (message) {
                  steps += value.kind === "report" ? 1 : 0;
                  progress.report({ message });
                  this.docs.append(report, `- ${message.replace(/\n/g, " ")}\n`);
                }
              },
            );
          } finally {
            cancelled.dispose();
          }
        },
      );
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.docs.append(report, `\n**The agent failed:** ${message}\n`);
      this.log.error(`tinyarms.agent: ${message}`);
      void vscode.window.showErrorMessage(`tinyarms agent failed: ${message}`, "Show Report").then((pick) => {
        if (pick) {
          void this.docs.open(report);
        }
      });
      return undefined;
    } finally {
      this.active -= 1;
    }
    const elapsed = Date.now() - started;
    const files = result.report.files ?? [];
    const stopped = result.report.stopped ?? "done";
    this.docs.append(report, summary(result, elapsed, steps));
    this.last = { run: result.run || run, goal: args.goal, files, stopped, undone: false, report };
    this.changed.fire();
    await vscode.commands.executeCommand("setContext", UNDO_CONTEXT, files.length > 0);
    this.status.answer(
      { route: "agent", role: "agent", tier: agentTier(result) ?? "agent" },
      elapsed,
      result.report.cost_usd,
    );
    const names = files.map((f) => path.basename(f.path));
    const changedText = names.length ? `changed ${names.join(", ")}` : "changed no files";
    const buttons = names.length ? ["Show Changes", "Undo"] : ["Show Report"];
    void vscode.window
      .showInformationMessage(`tinyarms agent: ${stopped}; ${changedText}.`, ...buttons)
      .then((pick) => {
        if (pick === "Undo") {
          void vscode.commands.executeCommand("tinyarms.agentUndo");
        } else if (pick === "Show Changes") {
          void vscode.commands.executeCommand("tinyarms.agentView.focus");
          void this.docs.open(report);
        } else if (pick === "Show Report") {
          void this.docs.open(report);
        }
      });
    return result;
  }

  /** Undo the last run: every file it touched back as it was, files it created deleted. */
  async undo(): Promise<void> {
    const last = this.last;
    if (!last || last.undone) {
      void vscode.window.showInformationMessage("tinyarms: no agent run to undo.");
      return;
    }
    this.active += 1;
    try {
      const result = await this.server.execute<{ restored: string[] | number; deleted: string[] | number }>(
        "tinyarms.agent.undo",
        { run: last.run },
      );
      last.undone = true;
      this.changed.fire();
      await vscode.commands.executeCommand("setContext", UNDO_CONTEXT, false);
      const count = (v: string[] | number) => (Array.isArray(v) ? v.length : v);
      this.docs.append(last.report, `\n**Undone:** ${count(result.restored)} restored, ${count(result.deleted)} deleted\n`);
      void vscode.window.showInformationMessage(
        `tinyarms agent: undone (${count(result.restored)} restored, ${count(result.deleted)} deleted).`,
      );
    } finally {
      this.active -= 1;
    }
  }

  private async editApplied(params: ApplyWorkspaceEditParams, applied: boolean, dirtyBefore: Set<string>): Promise<void> {
    if (!applied || this.active === 0) {
      return;
    }
    for (const uri of editedUris(params)) {
      const document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri);
      if (document?.isDirty && !dirtyBefore.has(uri)) {
        await document.save();
      }
    }
  }

  // The "Agent" view: the last run's goal, why it stopped, and its files (click: the diff).
  getTreeItem(element: AgentFile | string): vscode.TreeItem {
    if (typeof element === "string") {
      return new vscode.TreeItem(element);
    }
    const item = new vscode.TreeItem(path.basename(element.path));
    item.description = `${element.created ? "created" : "changed"}${this.last?.undone ? " (undone)" : ""}`;
    item.tooltip = element.path;
    item.resourceUri = vscode.Uri.file(element.path);
    item.command = { title: "Show diff", command: "tinyarms.agentShowDiff", arguments: [element] };
    return item;
  }

  getChildren(element?: AgentFile | string): (AgentFile | string)[] {
    if (element || !this.last) {
      return [];
    }
    return [`${this.last.goal}: ${this.last.stopped}`, ...this.last.files];
  }

  async showDiff(file: AgentFile): Promise<void> {
    await this.docs.open(this.docs.create(`${path.basename(file.path)}.diff`, file.diff || "(no diff)"));
  }

  dispose(): void {
    this.changed.dispose();
  }
}

/** The document URIs a WorkspaceEdit changes. */
function editedUris(params: ApplyWorkspaceEditParams): string[] {
  const uris = new Set<string>(Object.keys(params.edit.changes ?? {}));
  for (const change of params.edit.documentChanges ?? []) {
    if ("textDocument" in change) {
      uris.add(change.textDocument.uri);
    } else if ("uri" in change) {
      uris.add(change.uri);
    }
  }
  // The server's spelling of a URI may differ from VS Code's (percent-encoding): normalise.
  return [...uris].map((u) => vscode.Uri.parse(u).toString());
}

function agentTier(result: AgentResult): string | undefined {
  const steps = result.report.steps as { tier?: string; decision?: { tier?: string } }[];
  const last = steps?.[steps.length - 1];
  return last?.tier ?? last?.decision?.tier;
}

function summary(result: AgentResult, elapsedMs: number, steps: number): string {
  const r = result.report;
  const lines = [
    "",
    `**Stopped:** ${r.stopped ?? "done"} (${r.steps?.length ?? steps} steps, ${(elapsedMs / 1000).toFixed(1)} s` +
      `${r.tokens ? `, ${r.tokens} tokens` : ""}${formatCost(r.cost_usd) ? `, ${formatCost(r.cost_usd)}` : ""})`,
    "",
  ];
  for (const file of r.files ?? []) {
    lines.push(`## ${file.path}${file.created ? " (created)" : ""}`, "", "```diff", file.diff.trimEnd(), "```", "");
  }
  return `${lines.join("\n")}\n`;
}
