// The shapes of tinyarms' custom commands, as server/tinyarms/protocol.py documents them.
// Only what this extension reads is typed; the server may send more.
import type { WorkspaceEdit as LspWorkspaceEdit } from "vscode-languageclient/node";

export interface Decision {
  route: string | null;
  role: string;
  tier: string;
  score?: number;
  margin?: number;
  stage?: string;
  reason?: string;
  elapsed_ms?: number;
  cost_usd?: number | null;
  routed_tier?: string;
  strength?: { difficulty?: number; threshold?: number | null; strong?: boolean };
}

/** The decision-trace record of an answer; its `id` names the answer in `tinyarms.feedback`. */
export interface TraceRecord {
  id?: string;
}

export interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
}

export interface ContextPiece {
  kind: string;
  path?: string | null;
  tokens?: number;
}

export interface ServerCommand {
  title: string;
  command: string;
  arguments?: unknown[];
}

/** `tinyarms.chat` → */
export interface ChatResult {
  text: string;
  decision?: Decision;
  conversation: string;
  usage?: Usage;
  cost_usd?: number | null;
  context?: ContextPiece[];
  actions?: ServerCommand[];
  note?: string;
  trace?: TraceRecord | null;
}

/** `tinyarms.feedback` (server/tinyarms/protocol.py): at least one of rating, outcome, route. */
export interface AnswerFeedback {
  trace_id?: string;
  rating?: "up" | "down";
  outcome?: "accepted" | "rejected";
  route?: string;
}

export interface AnswerFeedbackResult {
  recorded: boolean;
  trace_id: string;
  correction: boolean;
}

/** `tinyarms.reask {trace_id, tier?, stream_id?}`: the same request on a stronger tier. */
export const REASK = "tinyarms.reask";

export interface ReaskResult {
  text: string;
  decision?: Decision;
  trace?: TraceRecord | null;
  reask_of?: string;
  cost_usd?: number | null;
}

/** `tinyarms.chat.list` → */
export interface ChatList {
  conversations: { id: string; title: string; turns: number; updated: string | number }[];
}

/** `tinyarms.edit` with preview: true → the proposal, or a refusal. */
export interface EditResult {
  diff?: string;
  edit?: LspWorkspaceEdit;
  decision?: Decision;
  applied?: boolean;
  refused?: string;
  trace?: TraceRecord | null;
}

export interface AgentFile {
  path: string;
  diff: string;
  created: boolean;
}

/** `tinyarms.agent` → */
export interface AgentResult {
  run: string;
  report: {
    goal: string;
    steps: unknown[];
    files: AgentFile[];
    tokens?: number;
    cost_usd?: number | null;
    stopped?: string;
  };
}

export const FEEDBACK = "tinyarms.autocomplete.feedback";

/** `tinyarms/cursorMoved` (client → server notification): where the cursor settled. */
export const CURSOR_MOVED = "tinyarms/cursorMoved";
export interface CursorMovedParams {
  textDocument: { uri: string };
  position: { line: number; character: number };
}
export type FeedbackEvent = "shown" | "accepted" | "partial" | "dismissed";

export interface FeedbackArgs {
  id: string;
  event: FeedbackEvent;
  accepted_length?: number;
}

/** "$0.0004" / "$0" / "" for a cost in US dollars. */
export function formatCost(cost: number | null | undefined): string {
  if (cost === null || cost === undefined || Number.isNaN(cost)) {
    return "";
  }
  return cost === 0 ? "$0" : `$${cost < 0.01 ? cost.toFixed(4) : cost.toFixed(2)}`;
}

/** "840 ms" / "2.4 s". */
export function formatLatency(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) {
    return "";
  }
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** One line for a decision: route, tier, latency, cost. */
export function decisionLine(d: Decision | undefined, elapsedMs?: number, cost?: number | null): string {
  if (!d) {
    return "no decision";
  }
  const parts = [`route ${d.route ?? "none"}`, `role ${d.role}`, `tier ${d.tier}`];
  const latency = formatLatency(elapsedMs ?? d.elapsed_ms);
  if (latency) {
    parts.push(latency);
  }
  const money = formatCost(cost ?? d.cost_usd);
  if (money) {
    parts.push(money);
  }
  return parts.join(" · ");
}
