// The chat view in the side bar: one conversation at a time (`tinyarms.chat` keeps its
// turns on the server, in the state dir), answers streamed in as Markdown, code blocks with
// Copy and Insert, and under each answer the decision (route, tier, latency, cost) and the
// context that was sent, and the user's verdict on it: thumbs up / down, "Try a stronger tier" and
// "Wrong route…" (answers.ts sends them to the server's decision trace, by the answer's trace id).
//
// A webview, unlike the read-only answer tabs of tinyarms: Ask: a conversation needs an
// input box under its history and buttons on its code blocks. The webview renders nothing
// from the model as HTML: markdown-it runs here with raw HTML off, and the CSP allows only
// this extension's script.
import * as crypto from "node:crypto";
import * as vscode from "vscode";

import { pickRoute, reask, sendFeedback } from "./answers";
import { renderMarkdown } from "./markdown";
import { ChatList, ChatResult, ContextPiece, Decision, decisionLine, ServerCommand } from "./protocol";
import { Server } from "./server";
import { StatusItem } from "./status";
import { LspRange, lspRange } from "./ui";

export const CHAT_VIEW = "tinyarms.chatView";
const HISTORY_KEY = "tinyarms.chat.turns";
const MAX_KEPT_TURNS = 200; // per conversation, for showing it again (the server keeps its own)

interface Turn {
  role: "user" | "assistant";
  text: string;
  footer?: string;
  context?: string;
  actions?: ServerCommand[];
  error?: boolean;
  /** The answer's trace id (`tinyarms.feedback` names it); absent: no feedback buttons. */
  traceId?: string;
  /** The route the router chose (null: none), for the route correction's quick pick. */
  route?: string | null;
  rating?: "up" | "down";
  correctedRoute?: string;
  /** This answer is a re-ask on a stronger tier (it gets no second "Try a stronger tier"). */
  stronger?: boolean;
  /** The tier this answer's question was asked again on. */
  reaskedOn?: string;
}

type Rating = "up" | "down";

/** What the webview sends. */
type FromView =
  | { type: "ready" }
  | { type: "send"; text: string }
  | { type: "copy"; code: string }
  | { type: "insert"; code: string }
  | { type: "new" }
  | { type: "history" }
  | { type: "action"; turn: number; index: number }
  | { type: "rate"; turn: number; rating: Rating }
  | { type: "reroute"; turn: number }
  | { type: "stronger"; turn: number };

export interface ChatRequest {
  text: string;
  uri?: string;
  range?: LspRange;
}

export class ChatView implements vscode.WebviewViewProvider, vscode.Disposable {
  private view?: vscode.WebviewView;
  private conversation?: string;
  private turns: Turn[] = [];
  private busy = false;
  private streamCounter = 0;
  private lastEditor?: vscode.TextEditor;
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly server: Server,
    private readonly status: StatusItem,
    private readonly state: vscode.Memento,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.lastEditor = vscode.window.activeTextEditor;
    this.subscriptions.push(
      vscode.window.onDidChangeActiveTextEditor((editor) => {
        // The webview takes focus; Insert goes to the last real file editor.
        if (editor && (editor.document.uri.scheme === "file" || editor.document.uri.scheme === "untitled")) {
          this.lastEditor = editor;
        }
      }),
    );
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const media = vscode.Uri.joinPath(this.extensionUri, "media");
    view.webview.options = { enableScripts: true, localResourceRoots: [media] };
    view.webview.html = this.html(view.webview, media);
    this.subscriptions.push(
      view.webview.onDidReceiveMessage((message: FromView) => void this.received(message)),
      view.onDidDispose(() => {
        this.view = undefined;
      }),
    );
  }

  /** Open the view and send `request` as the next turn of the current conversation. */
  async ask(request: ChatRequest): Promise<void> {
    await this.reveal();
    await this.send(request);
  }

  async reveal(): Promise<void> {
    await vscode.commands.executeCommand(`${CHAT_VIEW}.focus`);
  }

  newConversation(): void {
    this.conversation = undefined;
    this.turns = [];
    this.post({ type: "reset", turns: [] });
  }

  private async received(message: FromView): Promise<void> {
    try {
      switch (message.type) {
        case "ready":
          this.post({ type: "reset", turns: this.turns.map((t) => this.rendered(t)), busy: this.busy });
          break;
        case "send":
          await this.send({ text: message.text, ...this.editorContext() });
          break;
        case "copy":
          await vscode.env.clipboard.writeText(message.code);
          void vscode.window.setStatusBarMessage("tinyarms: code copied", 2000);
          break;
        case "insert":
          await this.insert(message.code);
          break;
        case "new":
          this.newConversation();
          break;
        case "history":
          await this.pickConversation();
          break;
        case "action": {
          const action = this.turns[message.turn]?.actions?.[message.index];
          if (action) {
            await vscode.commands.executeCommand(action.command, ...(action.arguments ?? []));
          }
          break;
        }
        case "rate":
          await this.rate(message.turn, message.rating);
          break;
        case "reroute":
          await this.reroute(message.turn);
          break;
        case "stronger":
          await this.stronger(message.turn);
          break;
      }
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err);
      this.log.error(`chat view: ${text}`);
      void vscode.window.showErrorMessage(`tinyarms: ${text}`);
    }
  }

  /** The selection of the last file editor, as context (the server reads the file itself). */
  private editorContext(): Omit<ChatRequest, "text"> {
    const editor = this.lastEditor;
    if (!editor || editor.document.isClosed) {
      return {};
    }
    const context: Omit<ChatRequest, "text"> = { uri: editor.document.uri.toString() };
    const selection = editor.selection;
    if (!selection.isEmpty) {
      context.range = lspRange(selection);
    }
    return context;
  }

  private async send(request: ChatRequest): Promise<void> {
    if (!request.text.trim()) {
      return;
    }
    await this.answer({ role: "user", text: request.text }, async (streamId, started) => {
      const args: Record<string, unknown> = { text: request.text, stream_id: streamId };
      if (this.conversation) {
        args.conversation = this.conversation;
      }
      if (request.uri) {
        args.uri = request.uri;
      }
      if (request.range) {
        args.range = request.range;
      }
      const result = await this.server.execute<ChatResult>("tinyarms.chat", args);
      const elapsed = Date.now() - started;
      this.conversation = result.conversation || this.conversation;
      if (result.decision) {
        this.status.answer(result.decision, elapsed, result.cost_usd);
      }
      return {
        role: "assistant",
        text: result.text || result.note || "_(no answer text)_",
        footer: decisionLine(result.decision, elapsed, result.cost_usd),
        context: describeContext(result.context),
        actions: result.actions,
        ...traced(result.trace?.id, result.decision),
      };
    });
  }

  /**
   * One answer into the view: `question` (if any) first, the answer streamed in under a fresh
   * stream id while `call` runs, then the turn it returns (or the error in its place).
   */
  private async answer(question: Turn | undefined, call: (streamId: string, started: number) => Promise<Turn>): Promise<void> {
    if (this.busy) {
      void vscode.window.showInformationMessage("tinyarms: the chat is still answering; wait for it to finish.");
      return;
    }
    this.busy = true;
    if (question) {
      this.push(question);
    }
    this.post({ type: "busy", busy: true });
    this.streamCounter += 1;
    const streamId = `vscode-chat-${process.pid}-${this.streamCounter}`;
    let streamed = "";
    let timer: NodeJS.Timeout | undefined;
    const flush = () => {
      timer = undefined;
      this.post({ type: "stream", html: renderMarkdown(streamed) });
    };
    const subscription = this.server.onStream(streamId, (event) => {
      if (event.restart) {
        streamed = `_(restarted: ${event.reason ?? "fallback tier"})_\n\n`;
      } else if (event.delta) {
        streamed += event.delta;
      }
      timer ??= setTimeout(flush, 50); // at most ~20 redraws a second
    });
    try {
      this.push(await call(streamId, Date.now()));
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.log.error(`tinyarms chat: ${message}`);
      this.push({ role: "assistant", text: `**tinyarms could not answer:** ${message}`, error: true });
    } finally {
      clearTimeout(timer);
      subscription.dispose();
      this.busy = false;
      this.post({ type: "busy", busy: false });
      this.save();
    }
  }

  /** Thumbs up / down on answer `index`: `tinyarms.feedback {trace_id, rating}`; the answer shows it was recorded. */
  private async rate(index: number, rating: Rating): Promise<void> {
    const turn = this.turns[index];
    if (!turn?.traceId) {
      return;
    }
    await sendFeedback(this.server, { trace_id: turn.traceId, rating });
    turn.rating = rating;
    this.refresh(index);
  }

  /** "Wrong route…": pick the route the request should have taken; `tinyarms.feedback {trace_id, route}`. */
  private async reroute(index: number): Promise<void> {
    const turn = this.turns[index];
    if (!turn?.traceId) {
      return;
    }
    const route = await pickRoute(this.server, turn.route);
    if (!route) {
      return;
    }
    await sendFeedback(this.server, { trace_id: turn.traceId, route });
    turn.correctedRoute = route;
    this.refresh(index);
  }

  /** "Try a stronger tier": `tinyarms.reask` answers the same request on the role's strong tier. */
  private async stronger(index: number): Promise<void> {
    const turn = this.turns[index];
    const traceId = turn?.traceId;
    if (!turn || !traceId) {
      return;
    }
    await this.answer(undefined, async (streamId, started) => {
      const result = await reask(this.server, traceId, streamId);
      const elapsed = Date.now() - started;
      if (result.decision) {
        this.status.answer(result.decision, elapsed, result.cost_usd);
      }
      turn.reaskedOn = result.decision?.tier ?? "a stronger tier";
      this.refresh(index);
      return {
        role: "assistant",
        text: result.text || "_(no answer text)_",
        footer: `stronger tier, again: ${decisionLine(result.decision, elapsed, result.cost_usd)}`,
        stronger: true,
        ...traced(result.trace?.id, result.decision),
      };
    });
  }

  /** Show answer `index` again, with what the server has recorded about it. */
  private refresh(index: number): void {
    const turn = this.turns[index];
    this.post({ type: "update", index, turn: this.rendered(turn) });
    this.save();
  }

  private push(turn: Turn): void {
    this.turns.push(turn);
    this.post({ type: "turn", index: this.turns.length - 1, turn: this.rendered(turn) });
  }

  private rendered(turn: Turn): Record<string, unknown> {
    return {
      role: turn.role,
      html: turn.role === "assistant" ? renderMarkdown(turn.text) : undefined,
      text: turn.role === "user" ? turn.text : undefined,
      footer: turn.footer,
      context: turn.context,
      actions: (turn.actions ?? []).map((a) => a.title),
      error: turn.error,
      feedback: turn.traceId
        ? { rating: turn.rating, recorded: recordedNote(turn), stronger: !turn.stronger }
        : undefined,
    };
  }

  private async insert(code: string): Promise<void> {
    const editor = this.lastEditor;
    if (!editor || editor.document.isClosed) {
      void vscode.window.showWarningMessage("tinyarms: open a file to insert the code into.");
      return;
    }
    const shown = await vscode.window.showTextDocument(editor.document, editor.viewColumn);
    await shown.edit((builder) => builder.replace(shown.selection, code));
  }

  /** The server's conversations: pick one to continue (its turns show if this window kept them). */
  private async pickConversation(): Promise<void> {
    const list = await this.server.execute<ChatList>("tinyarms.chat.list", {});
    const items = list.conversations.map((c) => ({
      label: c.title || c.id,
      description: `${c.turns} turn${c.turns === 1 ? "" : "s"}`,
      detail: typeof c.updated === "number" ? new Date(c.updated * 1000).toLocaleString() : c.updated,
      id: c.id,
      buttons: [{ iconPath: new vscode.ThemeIcon("trash"), tooltip: "Delete this conversation" }],
    }));
    if (items.length === 0) {
      void vscode.window.showInformationMessage("tinyarms: no saved conversations yet.");
      return;
    }
    const pick = vscode.window.createQuickPick<(typeof items)[number]>();
    pick.title = "tinyarms: conversations";
    pick.items = items;
    pick.onDidTriggerItemButton(async ({ item }) => {
      await this.server.execute("tinyarms.chat.delete", { conversation: item.id });
      pick.items = pick.items.filter((i) => i.id !== item.id);
      if (this.conversation === item.id) {
        this.newConversation();
      }
    });
    const chosen = await new Promise<(typeof items)[number] | undefined>((resolve) => {
      pick.onDidAccept(() => resolve(pick.selectedItems[0]));
      pick.onDidHide(() => resolve(undefined));
      pick.show();
    });
    pick.dispose();
    if (chosen) {
      this.conversation = chosen.id;
      const kept = this.state.get<Record<string, Turn[]>>(HISTORY_KEY, {})[chosen.id];
      this.turns = kept ?? [];
      // The note is not a turn: the view's turn indices must stay this.turns' (feedback names them).
      const note = kept ? undefined : renderMarkdown(`_Continuing “${chosen.label}” (${chosen.description}); its earlier turns are kept by the server._`);
      this.post({ type: "reset", turns: this.turns.map((t) => this.rendered(t)), note });
    }
  }

  private save(): void {
    if (!this.conversation) {
      return;
    }
    const all = { ...this.state.get<Record<string, Turn[]>>(HISTORY_KEY, {}) };
    all[this.conversation] = this.turns.slice(-MAX_KEPT_TURNS);
    void this.state.update(HISTORY_KEY, all);
  }

  private post(message: Record<string, unknown>): void {
    void this.view?.webview.postMessage(message);
  }

  private html(webview: vscode.Webview, media: vscode.Uri): string {
    const nonce = crypto.randomBytes(16).toString("base64");
    const script = webview.asWebviewUri(vscode.Uri.joinPath(media, "chat.js"));
    const style = webview.asWebviewUri(vscode.Uri.joinPath(media, "chat.css"));
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${webview.cspSource}; script-src 'nonce-${nonce}'; img-src ${webview.cspSource} data:;">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="${style}">
<title>tinyarms chat</title>
</head>
<body>
<div id="toolbar">
  <button id="new" title="Start a new conversation">New</button>
  <button id="history" title="Continue or delete a saved conversation">History…</button>
</div>
<div id="turns" role="log" aria-live="polite"></div>
<form id="composer">
  <textarea id="input" rows="3" placeholder="Ask tinyarms (Enter sends, Shift+Enter for a new line; @path adds a file; the editor's selection goes along)" aria-label="Message"></textarea>
  <button id="send" type="submit">Send</button>
</form>
<script nonce="${nonce}" src="${script}"></script>
</body>
</html>`;
  }

  dispose(): void {
    for (const s of this.subscriptions) {
      s.dispose();
    }
  }
}

/** "recorded: thumbs down (not a good answer) · route should have been fix": what the server has. */
function recordedNote(turn: Turn): string | undefined {
  const notes = [
    turn.rating && (turn.rating === "up" ? "thumbs up (a good answer)" : "thumbs down (not a good answer)"),
    turn.correctedRoute && `route should have been ${turn.correctedRoute}`,
    turn.reaskedOn && `asked ${turn.reaskedOn} again (below)`,
  ].filter(Boolean);
  return notes.length ? `recorded: ${notes.join(" · ")}` : undefined;
}

/** The feedback fields of an answer with trace id `id` (none without one: nothing to name). */
function traced(id: string | undefined, decision: Decision | undefined): Partial<Turn> {
  return id ? { traceId: id, route: decision?.route ?? null } : {};
}

function describeContext(context: ContextPiece[] | undefined): string | undefined {
  if (!context || context.length === 0) {
    return undefined;
  }
  return (
    "context: " +
    context.map((c) => `${c.path ?? c.kind}${c.path ? ` (${c.kind})` : ""}${c.tokens ? ` ${c.tokens} tok` : ""}`).join(", ")
  );
}
