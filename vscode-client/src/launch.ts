// How the extension starts Python: the one place that builds those command lines. No
// `vscode` import, so tests/test_hostile_workspace.py can run it with plain Node and start
// exactly this command in a hostile folder.
//
// The server runs with the workspace as its current folder, and `python -m` / `python -c`
// put the current folder first on sys.path: a cloned repository's `tinyarms/__init__.py`
// or `queue.py` would run. `-P` (Python 3.11+) leaves the current folder off sys.path and
// keeps PYTHONPATH; relative and empty PYTHONPATH entries (both mean "the current folder")
// are dropped from the environment for the same reason.
import * as path from "node:path";

export interface Launch {
  command: string;
  args: string[];
  options: { env: NodeJS.ProcessEnv; cwd?: string };
}

/** The interpreter flags every tinyarms process starts with, then `args`. */
export function pythonArgs(...args: string[]): string[] {
  return ["-P", ...args];
}

/** `env` with PYTHONPATH reduced to its absolute entries. */
export function safeEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const result = { ...env };
  if (result.PYTHONPATH !== undefined) {
    const entries = result.PYTHONPATH.split(path.delimiter).filter((entry) => path.isAbsolute(entry));
    if (entries.length) {
      result.PYTHONPATH = entries.join(path.delimiter);
    } else {
      delete result.PYTHONPATH;
    }
  }
  return result;
}

/** The language server: `python -P -m tinyarms serve -v` in the workspace folder. */
export function serverLaunch(python: string, verbose: boolean, env: NodeJS.ProcessEnv, cwd?: string): Launch {
  return {
    command: python,
    args: pythonArgs("-m", "tinyarms", "serve", verbose ? "-vv" : "-v"),
    options: { env: safeEnv(env), cwd },
  };
}

/** A tinyarms CLI subcommand (`config path`, `stats`) run the same way. */
export function cliLaunch(python: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Launch {
  return { command: python, args: pythonArgs("-m", "tinyarms", ...args), options: { env: safeEnv(env), cwd } };
}

/** `python -P -c CODE` (the install probe, the trace path). */
export function codeLaunch(python: string, code: string, env: NodeJS.ProcessEnv): Launch {
  return { command: python, args: pythonArgs("-c", code), options: { env: safeEnv(env) } };
}
