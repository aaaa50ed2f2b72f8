// What the user says about an answer, sent back to the server's decision trace: a thumbs
// up / down, a route correction ("this was a fix"), an edit accepted or rejected, and
// "try a stronger tier" (the same request answered again on the role's strong tier).
// The router learns from these (`tinyarms router fit --from-log`); nothing here decides.
//
// Every answer of `tinyarms.chat` / `tinyarms.ask` / `tinyarms.edit` carries `trace.id`; the
// feedback names it, so a rating of an old answer in the chat view still lands on that answer.
import * as vscode from "vscode";

import { AnswerFeedback, AnswerFeedbackResult, REASK, ReaskResult } from "./protocol";
import { Server } from "./server";

export const ANSWER_FEEDBACK = "tinyarms.feedback";

/** `tinyarms.feedback`: one rating, outcome or route correction for the answer `trace_id` names. */
export async function sendFeedback(server: Server, feedback: AnswerFeedback): Promise<AnswerFeedbackResult> {
  return server.execute<AnswerFeedbackResult>(ANSWER_FEEDBACK, { ...feedback });
}

/** An edit's outcome; a failure only goes to the log (the edit itself already happened or not). */
export async function sendOutcome(
  server: Server,
  traceId: string | undefined,
  outcome: "accepted" | "rejected",
  log: vscode.LogOutputChannel,
): Promise<void> {
  if (!traceId || !server.offers(ANSWER_FEEDBACK)) {
    return;
  }
  try {
    await sendFeedback(server, { trace_id: traceId, outcome });
    log.info(`tinyarms.feedback: edit ${outcome} (trace ${traceId})`);
  } catch (err) {
    log.warn(`tinyarms.feedback (edit ${outcome}): ${err instanceof Error ? err.message : String(err)}`);
  }
}

interface RouteItem extends vscode.QuickPickItem {
  route: string;
}

/** The enabled routes of the effective config (from `tinyarms.showConfig`), and "none". */
async function routeItems(server: Server, current: string | null | undefined): Promise<RouteItem[]> {
  type Leaf = { value: unknown };
  const shown = await server.execute<{ config?: { routes?: Record<string, Record<string, Leaf>> } | null }>(
    "tinyarms.showConfig",
  );
  const routes = shown.config?.routes ?? {};
  const items: RouteItem[] = Object.entries(routes)
    .filter(([, fields]) => fields.enabled?.value !== false)
    .map(([name, fields]) => ({
      label: name,
      route: name,
      description: `role ${String(fields.role?.value ?? "chat")}${name === current ? " · the router chose this" : ""}`,
      detail: typeof fields.instruction?.value === "string" ? fields.instruction.value : undefined,
    }));
  items.push({
    label: "none",
    route: "none",
    description: `no route: the fallback role${current === null ? " · the router chose this" : ""}`,
  });
  return items;
}

/** A quick pick of the routes; the one the user picked, or undefined when they cancelled. */
export async function pickRoute(server: Server, current: string | null | undefined): Promise<string | undefined> {
  const items = await routeItems(server, current);
  const picked = await vscode.window.showQuickPick(items, {
    title: "tinyarms: which route should this request have taken?",
    placeHolder: `the router chose ${current ?? "no route"}; your answer goes into the trace (tinyarms router fit --from-log learns from it)`,
    matchOnDescription: true,
  });
  return picked?.route;
}

/** `tinyarms.reask`: the same request again on the role's strong tier (streamed under `streamId`). */
export async function reask(server: Server, traceId: string, streamId: string): Promise<ReaskResult> {
  if (!server.offers(REASK)) {
    throw new Error(`this tinyarms server has no ${REASK} command (update it to try a stronger tier)`);
  }
  return server.execute<ReaskResult>(REASK, { trace_id: traceId, stream_id: streamId });
}
