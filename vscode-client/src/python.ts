// Which Python runs the server, and whether tinyarms is importable there.
import { execFile } from "node:child_process";
import * as vscode from "vscode";

import { cliLaunch, codeLaunch } from "./launch";

export interface Interpreter {
  command: string;
  source: string; // where the choice came from, for messages: "tinyarms.python", "Python extension", "PATH"
}

/** The `tinyarms.python` setting, else the Python extension's active interpreter, else python3. */
export async function findInterpreter(log: vscode.LogOutputChannel): Promise<Interpreter> {
  const configured = vscode.workspace.getConfiguration("tinyarms").get<string>("python", "").trim();
  if (configured) {
    return { command: configured, source: "setting tinyarms.python" };
  }
  const fromExtension = await pythonExtensionInterpreter(log);
  if (fromExtension) {
    return { command: fromExtension, source: "the Python extension's active interpreter" };
  }
  return { command: "python3", source: "python3 on PATH" };
}

// The ms-python.python API is optional: use it when installed, never require it.
async function pythonExtensionInterpreter(log: vscode.LogOutputChannel): Promise<string | undefined> {
  const ext = vscode.extensions.getExtension("ms-python.python");
  if (!ext) {
    return undefined;
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const api: any = ext.isActive ? ext.exports : await ext.activate();
    const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
    const envs = api?.environments;
    if (envs?.getActiveEnvironmentPath) {
      const active = envs.getActiveEnvironmentPath(resource);
      const resolved = await envs.resolveEnvironment(active);
      const path: string | undefined = resolved?.executable?.uri?.fsPath ?? active?.path;
      if (path) {
        return path;
      }
    }
    // Older API: settings.getExecutionDetails().execCommand is [python, ...args].
    const exec: string[] | undefined = api?.settings?.getExecutionDetails?.(resource)?.execCommand;
    return exec?.[0];
  } catch (err) {
    log.warn(`Python extension did not give an interpreter: ${err}`);
    return undefined;
  }
}

export interface Probe {
  ok: boolean;
  version?: string;
  detail: string; // stderr or the spawn error when not ok
}

/** Run `<python> -c "import tinyarms"`; bounded, so a hung interpreter cannot stall activation. */
export function probeTinyarms(python: string, env: NodeJS.ProcessEnv): Promise<Probe> {
  return new Promise((resolve) => {
    const launch = codeLaunch(python, "import tinyarms; print(tinyarms.__version__)", env);
    execFile(
      launch.command,
      launch.args,
      { ...launch.options, timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err) {
          const detail = (stderr || err.message).trim().split("\n").slice(-3).join("\n");
          resolve({ ok: false, detail });
        } else {
          resolve({ ok: true, version: stdout.trim(), detail: "" });
        }
      },
    );
  });
}

/** Run a tinyarms CLI subcommand with the server's interpreter and return its stdout. */
export function runCli(python: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const launch = cliLaunch(python, args, env, cwd);
    execFile(launch.command, launch.args, { ...launch.options, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error((stderr || err.message).trim()));
      } else {
        resolve(stdout);
      }
    });
  });
}

/** Where the installed tinyarms writes its decision trace (JSONL), if this version has one. */
export function tracePath(python: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  return new Promise((resolve) => {
    const launch = codeLaunch(python, "from tinyarms.tiers.trace import trace_path; print(trace_path())", env);
    execFile(
      launch.command,
      launch.args,
      { ...launch.options, timeout: 30_000 },
      (err, stdout) => resolve(err ? undefined : stdout.trim() || undefined),
    );
  });
}

/** What installs tinyarms for this interpreter: scripts/install.sh builds llama.cpp portably. */
export function installCommand(python: string): string {
  return `PYTHON=${python} ./scripts/install.sh`;
}
