// The tinyarms language server process and the LSP client that talks to it.
import * as readline from "node:readline";
import type { Readable } from "node:stream";
import * as vscode from "vscode";
import { ExecuteCommandRequest, LanguageClient, State, WorkDoneProgress } from "vscode-languageclient/node";
import type {
  ApplyWorkspaceEditParams,
  LanguageClientOptions,
  ServerOptions,
  WorkDoneProgressBegin,
  WorkDoneProgressEnd,
  WorkDoneProgressReport,
} from "vscode-languageclient/node";

import { serverLaunch } from "./launch";
import { findInterpreter, installCommand, Interpreter, probeTinyarms } from "./python";
import { editorSettingsLayer } from "./settings";
import { StatusEvent, StatusItem } from "./status";

/** `tinyarms/stream` payloads, see server/tinyarms/protocol.py. */
export interface StreamEvent {
  stream_id: string;
  delta?: string;
  restart?: boolean;
  reason?: string;
}

export type ProgressValue = WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd;

/** The documents the server handles: every real file (completions are language-agnostic).
 * Our own virtual documents (scheme "tinyarms") are left out on purpose. */
export const DOCUMENTS: { scheme: string }[] = [{ scheme: "file" }, { scheme: "untitled" }];

/** Hooks the other modules add to the client (feedback on inline answers, agent edits). */
export interface ServerHooks {
  inlineAnswered?: (
    document: vscode.TextDocument,
    position: vscode.Position,
    result: vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined,
  ) => void;
  /** After a server's workspace/applyEdit; `dirtyBefore`: documents with unsaved changes before it. */
  editApplied?: (params: ApplyWorkspaceEditParams, applied: boolean, dirtyBefore: Set<string>) => Promise<void>;
}

export class Server implements vscode.Disposable {
  private client?: LanguageClient;
  interpreter?: Interpreter;
  readonly hooks: ServerHooks = {};
  private readonly streams = new Map<string, (event: StreamEvent) => void>();
  private queue: Promise<unknown> = Promise.resolve();
  private tokens = 0;

  constructor(
    private readonly log: vscode.LogOutputChannel,
    private readonly status: StatusItem,
  ) {}

  get running(): boolean {
    return this.client?.state === State.Running;
  }

  /** The environment the server (and tinyarms CLI calls) run with: the editor's own. */
  env(): NodeJS.ProcessEnv {
    return { ...process.env, PYTHONUNBUFFERED: "1" };
  }

  cwd(): string | undefined {
    return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  }

  async start(): Promise<boolean> {
    this.status.starting();
    const interpreter = await findInterpreter(this.log);
    this.interpreter = interpreter;
    this.log.info(`Python: ${interpreter.command} (${interpreter.source})`);
    const probe = await probeTinyarms(interpreter.command, this.env());
    if (!probe.ok) {
      this.notInstalled(interpreter, probe.detail);
      return false;
    }
    // -v: the server's info log (config loaded, model ready) belongs in the log channel,
    // which filters by its own level; a verbose trace adds the server's debug log.
    const verbose = vscode.workspace.getConfiguration("tinyarms").get<string>("trace.server") === "verbose";
    const launch = serverLaunch(interpreter.command, verbose, this.env(), this.cwd());
    this.log.info(`tinyarms ${probe.version} found; starting ${launch.command} ${launch.args.join(" ")}`);
    const serverOptions: ServerOptions = launch;
    const clientOptions: LanguageClientOptions = {
      documentSelector: DOCUMENTS,
      outputChannel: this.log,
      // Traces go to the same channel; they show when tinyarms.trace.server is on and the
      // channel's log level is Trace (the gear in the Output view).
      stdioOptions: { stdout: () => undefined, stderr: (input) => pipeServerLog(input, this.log) },
      // The settings layer travels only by workspace/configuration (the server pulls it
      // before its first config load) and didChangeConfiguration. Sending it in
      // initializationOptions too would make it a floor the server merges under every
      // later change, so a setting the user clears would stay in effect until a restart.
      initializationOptions: { workspaceTrusted: vscode.workspace.isTrusted },
      middleware: {
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          // The server answers within its latency budget and, when generation is slower,
          // keeps generating into its cache ("speculation"). VS Code asks again only on the
          // next keystroke, so after an empty answer ask again a few times while the user
          // pauses (typing cancels `token`, which ends this at once).
          let result = await next(document, position, context, token);
          for (const delay of REASK_AFTER_EMPTY_MS) {
            if (hasInlineItems(result) || token.isCancellationRequested) {
              break;
            }
            await sleep(delay, token);
            if (token.isCancellationRequested) {
              break;
            }
            result = await next(document, position, context, token);
          }
          if (!token.isCancellationRequested) {
            this.hooks.inlineAnswered?.(document, position, result);
          }
          return result;
        },
        workspace: {
          // Edits the server applies (tinyarms.edit without preview, the agent's writes) go
          // through VS Code's own applyEdit, so they are undoable; the hook sees the outcome.
          handleApplyEdit: async (params, next) => {
            const dirtyBefore = new Set(
              vscode.workspace.textDocuments.filter((d) => d.isDirty).map((d) => d.uri.toString()),
            );
            const outcome = await next(params, new vscode.CancellationTokenSource().token);
            if (this.hooks.editApplied && !(outcome instanceof Error) && outcome && "applied" in outcome) {
              await this.hooks.editApplied(params, outcome.applied, dirtyBefore);
            }
            return outcome;
          },
          // The server pulls section "tinyarms": answer with the config layer, not the raw
          // VS Code settings (which also hold client-only keys such as tinyarms.python).
          configuration: (params, token, next) => {
            if (params.items.every((item) => item.section === "tinyarms")) {
              return params.items.map(() => editorSettingsLayer());
            }
            return next(params, token);
          },
        },
      },
    };
    const client = new LanguageClient("tinyarms", "tinyarms", serverOptions, clientOptions);
    // The server's commands (tinyarms.ask, tinyarms.showConfig, ...) share their names with
    // this extension's VS Code commands, which wrap them with UI. Keep the client from
    // registering the server's names as VS Code commands (that would clash); we send
    // workspace/executeCommand ourselves in `execute`.
    client.getFeature(ExecuteCommandRequest.method).register = () => undefined;
    client.onNotification("tinyarms/status", (event: StatusEvent) => this.status.update(event));
    client.onNotification("tinyarms/stream", (event: StreamEvent) => this.streams.get(event.stream_id)?.(event));
    client.onDidChangeState((change) => {
      if (change.newState === State.Stopped && this.client === client) {
        this.status.failed("The tinyarms server stopped. See the 'tinyarms' output.");
      }
    });
    this.client = client;
    try {
      await client.start();
    } catch (err) {
      this.status.failed(`${err}`);
      this.log.error(`tinyarms server failed to start: ${err}`);
      void vscode.window.showErrorMessage(`tinyarms: the server failed to start: ${err}`, "Show log").then((pick) => {
        if (pick) {
          this.log.show();
        }
      });
      return false;
    }
    // Ready once the server answers a request (its config is loaded by then).
    try {
      const info = await this.execute<{ summary?: string[] }>("tinyarms.status");
      this.status.ready(info?.summary ?? []);
      this.log.info(`tinyarms ready: ${(info?.summary ?? []).join(", ")}`);
    } catch (err) {
      this.log.warn(`tinyarms.status failed: ${err}`);
      this.status.ready([]);
    }
    return true;
  }

  private notInstalled(interpreter: Interpreter, detail: string): void {
    const command = installCommand(interpreter.command);
    const message =
      `tinyarms is not installed for ${interpreter.command} (${interpreter.source}). ` +
      `Install it from a tinyarms clone with: ${command}, or set tinyarms.python to a Python that has it.`;
    this.log.error(`${message}\n${detail}`);
    this.status.failed(message);
    void vscode.window.showErrorMessage(message, "Copy install command", "Set tinyarms.python", "Show log").then(
      (pick) => {
        if (pick === "Copy install command") {
          void vscode.env.clipboard.writeText(command);
        } else if (pick === "Set tinyarms.python") {
          void vscode.commands.executeCommand("workbench.action.openSettings", "tinyarms.python");
        } else if (pick === "Show log") {
          this.log.show();
        }
      },
    );
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) {
      try {
        await client.stop(5_000);
      } catch (err) {
        this.log.warn(`stopping the server: ${err}`);
      }
    }
  }

  /** Stop, then start again; calls queue up, so two restarts never race to two servers. */
  restart(): Promise<boolean> {
    const run = this.queue.then(async () => {
      await this.stop();
      return this.start();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** workspace/executeCommand with one JSON object argument (or none). */
  async execute<T>(command: string, args?: Record<string, unknown>, cancel?: vscode.CancellationToken): Promise<T> {
    if (!this.client || !this.running) {
      throw new Error("the tinyarms server is not running (tinyarms: Restart Server, or see the 'tinyarms' output)");
    }
    return this.client.sendRequest(
      ExecuteCommandRequest.type,
      { command, arguments: args === undefined ? [] : [args] },
      cancel,
    ) as Promise<T>;
  }

  /**
   * workspace/executeCommand with a workDoneToken (in the params, as LSP has it, and in the
   * argument, as tinyarms' commands take it): `onProgress` gets every $/progress value.
   */
  async executeWithProgress<T>(
    command: string,
    args: Record<string, unknown>,
    onProgress: (value: ProgressValue) => void,
    cancel?: vscode.CancellationToken,
  ): Promise<T> {
    const client = this.client;
    if (!client || !this.running) {
      throw new Error("the tinyarms server is not running (tinyarms: Restart Server, or see the 'tinyarms' output)");
    }
    this.tokens += 1;
    const token = `vscode-${process.pid}-${Date.now()}-${this.tokens}`;
    const listener = client.onProgress(WorkDoneProgress.type, token, onProgress);
    try {
      return (await client.sendRequest(
        ExecuteCommandRequest.type,
        { command, arguments: [{ ...args, workDoneToken: token }], workDoneToken: token },
        cancel,
      )) as T;
    } finally {
      listener.dispose();
    }
  }

  /** The running client (for its protocol converters); undefined when stopped. */
  get languageClient(): LanguageClient | undefined {
    return this.running ? this.client : undefined;
  }

  /** Whether the running server offers `command` (older servers lack the newer ones). */
  offers(command: string): boolean {
    const provider = this.client?.initializeResult?.capabilities.executeCommandProvider;
    return !!provider?.commands.includes(command);
  }

  /** A notification to the running server; dropped while it is not running. */
  notify(method: string, params: object): void {
    if (this.client && this.running) {
      void this.client.sendNotification(method, params);
    }
  }

  /** Send the editor-settings layer again (after the user changed a tinyarms setting). */
  sendSettings(): void {
    if (this.client && this.running) {
      void this.client.sendNotification("workspace/didChangeConfiguration", {
        settings: { tinyarms: editorSettingsLayer() },
      });
    }
  }

  onStream(streamId: string, handler: (event: StreamEvent) => void): vscode.Disposable {
    this.streams.set(streamId, handler);
    return new vscode.Disposable(() => this.streams.delete(streamId));
  }

  dispose(): void {
    void this.stop();
  }
}

// The server logs to stderr as "DATE TIME LEVEL logger: message" (tinyarms/logs.py).
const LOG_LINE = /^\d{4}-\d\d-\d\d [\d:,]+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+): (.*)$/;

/**
 * Server stderr into the log channel at each record's own level (not all as errors).
 * tinyarms' own records at info and above also arrive through window/logMessage once the
 * server runs, so here they go at debug level only, to keep the channel free of doubles.
 * Anything unformatted (a traceback, a native crash message) is an error.
 */
export function pipeServerLog(input: Readable, log: vscode.LogOutputChannel): void {
  readline.createInterface({ input, crlfDelay: Infinity, terminal: false }).on("line", (line) => {
    const match = LOG_LINE.exec(line);
    if (!match) {
      if (line.trim()) {
        log.error(line);
      }
      return;
    }
    const [, level, logger, message] = match;
    const text = `${logger}: ${message}`;
    if (level === "DEBUG" || logger.startsWith("tinyarms")) {
      log.debug(text);
    } else if (level === "INFO") {
      log.info(text);
    } else if (level === "WARNING") {
      log.warn(text);
    } else {
      log.error(text);
    }
  });
}

/** Pauses before asking again after an empty inline answer (2.5 s in all). */
const REASK_AFTER_EMPTY_MS = [100, 200, 300, 400, 500, 500, 500];

function hasInlineItems(result: vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined): boolean {
  const items = Array.isArray(result) ? result : result?.items;
  return !!items && items.length > 0;
}

function sleep(ms: number, token: vscode.CancellationToken): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      listener.dispose();
      resolve();
    }, ms);
    const listener = token.onCancellationRequested(() => {
      clearTimeout(timer);
      listener.dispose();
      resolve();
    });
  });
}
