// tinyarms for VS Code: starts `python -m tinyarms serve` and gives it a status bar item,
// commands, a log and settings. Inline completions come from vscode-languageclient's
// built-in inlineCompletion support (feedback.ts reports what happens to them); the chat
// view (chat.ts), edits with a diff preview (edit.ts) and the agent (agent.ts) are the
// modules imported here. This file only wires them to VS Code commands.
import * as fs from "node:fs/promises";
import * as path from "node:path";
import * as vscode from "vscode";

import { AgentArgs, AgentRunner } from "./agent";
import { Asker } from "./ask";
import { CHAT_VIEW, ChatRequest, ChatView } from "./chat";
import { CursorReporter } from "./cursor";
import { Documents, SCHEME } from "./documents";
import { EditArgs, EditFlow } from "./edit";
import { Feedback } from "./feedback";
import { AgentFile, CURSOR_MOVED, FEEDBACK } from "./protocol";
import { runCli, tracePath } from "./python";
import { DOCUMENTS, Server } from "./server";
import { affectsLayer, needsRestart } from "./settings";
import { StatusItem } from "./status";

interface ShowConfigResult {
  text: string;
  summary: string[];
  trusted: boolean;
  files: string[];
  problems: { message: string; severity: string; file: string | null; line: number | null }[];
  using_last_good: boolean;
}

let server: Server | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const log = vscode.window.createOutputChannel("tinyarms", { log: true });
  const status = new StatusItem();
  const docs = new Documents();
  server = new Server(log, status);
  const asker = new Asker(server, docs, status, log);
  const srv = server;
  const chat = new ChatView(context.extensionUri, srv, status, context.workspaceState, log);
  const edits = new EditFlow(srv, docs, status, log);
  const agent = new AgentRunner(srv, docs, status, log);
  const feedback = new Feedback((args) => srv.execute(FEEDBACK, { ...args }), log);
  srv.hooks.inlineAnswered = (document, position, result) => feedback.answered(document, position, result);
  const cursor = new CursorReporter((params) => srv.notify(CURSOR_MOVED, params), DOCUMENTS);
  let autocompleteEnabled = true;

  // Every command reports its failure; commands the server's code actions and chat actions
  // name (tinyarms.chat, tinyarms.edit, tinyarms.agent, tinyarms.ask) get the server's argument.
  const command = <A>(name: string, run: (arg?: A) => unknown) =>
    vscode.commands.registerCommand(name, async (arg?: A) => {
      try {
        await run(arg);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        log.error(`${name}: ${message}`);
        void vscode.window.showErrorMessage(`tinyarms: ${message}`);
      }
    });

  const showConfig = async () => {
    const result = await srv.execute<ShowConfigResult>("tinyarms.showConfig");
    const lines = [
      "# tinyarms: the effective config; every value says where it came from.",
      `# Files: ${result.files.join(", ") || "(none: built-in preset only)"}`,
      `# Workspace trusted: ${result.trusted}`,
    ];
    if (result.using_last_good) {
      lines.push("# A config file is broken: the last good config is still in effect.");
    }
    for (const p of result.problems) {
      lines.push(`# ${p.severity}: ${p.file ?? ""}${p.line ? `:${p.line}` : ""} ${p.message}`);
    }
    const uri = docs.create("effective-config.toml", `${lines.join("\n")}\n\n${result.text}`);
    await docs.open(uri);
  };

  const openUserConfig = async () => {
    const out = await runCli(srv.interpreter?.command ?? "python3", ["config", "path"], srv.env(), srv.cwd());
    const match = /^user file:\s*(.+)$/im.exec(out);
    if (!match) {
      throw new Error(`could not read the user config path from 'tinyarms config path': ${out}`);
    }
    const file = match[1].trim();
    try {
      await fs.access(file);
    } catch {
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(
        file,
        "# tinyarms user config: overrides the preset for every workspace.\n" +
          "# See the README's Config section; 'tinyarms: Show Effective Config' shows what applies.\n",
        { flag: "wx" },
      );
    }
    await vscode.window.showTextDocument(vscode.Uri.file(file));
  };

  const showStats = async () => {
    const current = await srv.execute<Record<string, unknown>>("tinyarms.status");
    let stats: string;
    try {
      stats = await runCli(srv.interpreter?.command ?? "python3", ["stats"], srv.env(), srv.cwd());
    } catch (err) {
      stats = `(tinyarms stats is not available: ${err instanceof Error ? err.message.split("\n").pop() : err})`;
    }
    const text =
      "# tinyarms: decision trace and stats\n\n## Now (tinyarms.status)\n\n```json\n" +
      `${JSON.stringify(current, null, 2)}\n\`\`\`\n\n## Per role and tier (tinyarms stats)\n\n\`\`\`\n${stats.trimEnd()}\n\`\`\`\n`;
    await docs.open(docs.create("stats.md", text));
    await showChart();
  };

  // The same trace as a chart (`tinyarms stats --html`: spend, share, latency and rates per tier).
  const showChart = async () => {
    const dir = context.globalStorageUri.fsPath;
    await fs.mkdir(dir, { recursive: true });
    const page = path.join(dir, "stats.html");
    try {
      await runCli(srv.interpreter?.command ?? "python3", ["stats", "--html", page], srv.env(), srv.cwd());
    } catch (err) {
      log.info(`no stats chart: ${err instanceof Error ? err.message.split("\n").pop() : err}`);
      return; // nothing recorded yet (or an older tinyarms): the text above says so
    }
    const panel = vscode.window.createWebviewPanel("tinyarms.stats", "tinyarms: stats chart", vscode.ViewColumn.Beside, {
      enableScripts: false,
    });
    panel.webview.html = await fs.readFile(page, "utf8");
  };

  const openTrace = async () => {
    const file = await tracePath(srv.interpreter?.command ?? "python3", srv.env());
    if (!file) {
      void vscode.window.showInformationMessage("tinyarms: this version of tinyarms keeps no decision trace.");
      return;
    }
    try {
      await fs.access(file);
    } catch {
      void vscode.window.showInformationMessage(`tinyarms: no decision trace yet (${file}); ask something first.`);
      return;
    }
    await vscode.window.showTextDocument(vscode.Uri.file(file), { preview: true });
  };

  const toggleAutocomplete = async () => {
    // No argument: the server flips its own state (the config may have started it off).
    const result = await srv.execute<{ enabled: boolean }>("tinyarms.toggleAutocomplete", {});
    autocompleteEnabled = result.enabled;
    status.setAutocomplete(autocompleteEnabled);
    void vscode.window.showInformationMessage(`tinyarms: autocomplete ${autocompleteEnabled ? "on" : "off"}`);
  };

  const restart = async () => {
    autocompleteEnabled = true;
    await srv.restart();
  };

  const menu = async () => {
    const items: (vscode.QuickPickItem & { run: () => unknown })[] = [
      {
        label: "$(settings) Show effective config",
        description: "every value with its source",
        run: showConfig,
      },
      { label: "$(file) Open user config", description: "config.toml", run: openUserConfig },
      { label: "$(graph) Decision trace and stats", description: "last decision, per-tier figures", run: showStats },
      { label: "$(list-flat) Open decision trace file", description: "one JSON line per request", run: openTrace },
      {
        label: "$(sparkle) Toggle autocomplete",
        description: autocompleteEnabled ? "on now" : "off now",
        run: toggleAutocomplete,
      },
      { label: "$(debug-restart) Restart server", run: restart },
      { label: "$(output) Show server log", run: () => log.show() },
    ];
    const pick = await vscode.window.showQuickPick(items, { title: "tinyarms", placeHolder: "tinyarms" });
    await pick?.run();
  };

  context.subscriptions.push(
    log,
    status,
    docs,
    srv,
    vscode.workspace.registerTextDocumentContentProvider(SCHEME, docs),
    chat,
    edits,
    agent,
    feedback,
    cursor,
    vscode.window.registerWebviewViewProvider(CHAT_VIEW, chat, { webviewOptions: { retainContextWhenHidden: true } }),
    vscode.window.registerTreeDataProvider("tinyarms.agentView", agent),
    vscode.languages.registerCodeActionsProvider({ scheme: "file" }, new EditSelectionAction(), {
      providedCodeActionKinds: [vscode.CodeActionKind.RefactorRewrite],
    }),
    command("tinyarms.ask", (args?: { text?: string; uri?: string }) => asker.askCommand(args)),
    command("tinyarms.explainSelection", () => asker.explainSelection()),
    command("tinyarms.openChat", () => chat.reveal()),
    command("tinyarms.newChat", async () => {
      chat.newConversation();
      await chat.reveal();
    }),
    command("tinyarms.chat", async (args?: ChatRequest) => {
      if (args && typeof args.text === "string") {
        await chat.ask(args);
      } else {
        await chat.reveal();
      }
    }),
    command("tinyarms.editSelection", () => edits.editSelection()),
    command("tinyarms.edit", async (args?: EditArgs) => {
      if (args && typeof args.uri === "string" && args.range && typeof args.instruction === "string") {
        await edits.run(args);
      } else {
        await edits.editSelection();
      }
    }),
    command("tinyarms.acceptEdit", () => edits.accept()),
    command("tinyarms.rejectEdit", () => edits.reject()),
    command("tinyarms.agent", (args?: Partial<AgentArgs>) => agent.command(args)),
    command("tinyarms.agentUndo", () => agent.undo()),
    command("tinyarms.agentShowDiff", (file?: AgentFile) => file && agent.showDiff(file)),
    command("tinyarms.showConfig", showConfig),
    command("tinyarms.openUserConfig", openUserConfig),
    command("tinyarms.showStats", showStats),
    command("tinyarms.openTrace", openTrace),
    command("tinyarms.toggleAutocomplete", toggleAutocomplete),
    command("tinyarms.restartServer", restart),
    command("tinyarms.showMenu", menu),
    command("tinyarms.showLog", () => log.show()),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (needsRestart(event)) {
        void restart();
      } else if (affectsLayer(event)) {
        srv.sendSettings();
      }
    }),
    // Trust changes what a workspace file may do (endpoints, keys): start over with it.
    vscode.workspace.onDidGrantWorkspaceTrust(() => void restart()),
  );

  // Do not block activation on Python start-up.
  void srv.restart();
}

/** The light bulb on a selection: "tinyarms: Edit Selection…" (the diff preview flow). */
class EditSelectionAction implements vscode.CodeActionProvider {
  provideCodeActions(_document: vscode.TextDocument, range: vscode.Range | vscode.Selection): vscode.CodeAction[] {
    if (range.isEmpty) {
      return [];
    }
    const action = new vscode.CodeAction("tinyarms: Edit Selection…", vscode.CodeActionKind.RefactorRewrite);
    action.command = { title: "tinyarms: Edit Selection…", command: "tinyarms.editSelection" };
    return [action];
  }
}

export async function deactivate(): Promise<void> {
  await server?.stop();
}
