// The status bar item: whose it is (the text starts with "tinyarms"), what happened last.
import * as vscode from "vscode";

import { formatLatency } from "./protocol";

/** `tinyarms/status` payloads, see server/tinyarms/protocol.py. */
export interface CompletionStatus {
  kind: "completion";
  tier: string;
  model: string;
  elapsed_ms: number;
}
export interface DecisionStatus {
  kind: "decision";
  route: string | null;
  role: string;
  tier: string;
  elapsed_ms: number;
  cost_usd?: number;
}
export type StatusEvent = CompletionStatus | DecisionStatus | { kind: string; [key: string]: unknown };

export class StatusItem implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private lastCompletion?: CompletionStatus;
  private lastDecision?: DecisionStatus;
  private autocompleteOff = false;

  constructor() {
    this.item = vscode.window.createStatusBarItem("status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "tinyarms";
    this.item.command = "tinyarms.showMenu";
    this.starting();
    this.item.show();
  }

  starting(): void {
    this.set("$(loading~spin) tinyarms: starting", "The tinyarms language server is starting");
  }

  ready(summary: string[]): void {
    this.set("$(sparkle) tinyarms: ready", ["tinyarms is ready", ...summary].join("\n"));
  }

  failed(message: string): void {
    this.item.backgroundColor = new vscode.ThemeColor("statusBarItem.errorBackground");
    this.item.text = "$(error) tinyarms: not running";
    this.item.tooltip = `${message}\nClick for options.`;
  }

  setAutocomplete(enabled: boolean): void {
    this.autocompleteOff = !enabled;
    if (this.lastDecision) {
      this.showDecision(this.lastDecision);
    } else if (this.lastCompletion) {
      this.showCompletion(this.lastCompletion);
    } else {
      this.set(`$(sparkle) tinyarms: ready${this.offSuffix()}`, "tinyarms is ready");
    }
  }

  /** A finished chat, edit or agent answer: route, tier, latency and cost as the client saw them. */
  answer(decision: { route: string | null; role: string; tier: string }, elapsedMs: number, cost?: number | null): void {
    this.update({
      kind: "decision",
      route: decision.route,
      role: decision.role,
      tier: decision.tier,
      elapsed_ms: elapsedMs,
      cost_usd: cost ?? undefined,
    });
  }

  update(event: StatusEvent): void {
    if (event.kind === "completion") {
      this.lastCompletion = event as CompletionStatus;
      this.showCompletion(this.lastCompletion);
    } else if (event.kind === "decision") {
      this.lastDecision = event as DecisionStatus;
      this.showDecision(this.lastDecision);
    }
  }

  private showCompletion(c: CompletionStatus): void {
    this.set(
      `$(sparkle) tinyarms: ${c.tier} · ${Math.round(c.elapsed_ms)} ms${this.offSuffix()}`,
      `Last completion: tier ${c.tier}, model ${c.model}, ${Math.round(c.elapsed_ms)} ms` + this.decisionLine(),
    );
  }

  private showDecision(d: DecisionStatus): void {
    const cost = d.cost_usd !== undefined && d.cost_usd !== null ? ` · $${d.cost_usd.toFixed(4)}` : "";
    const latency = d.elapsed_ms ? ` · ${formatLatency(d.elapsed_ms)}` : "";
    this.set(
      `$(sparkle) tinyarms: ${d.route ?? "no route"} → ${d.tier}${latency}${cost}${this.offSuffix()}`,
      this.decisionLine().trim() +
        (this.lastCompletion
          ? `\nLast completion: tier ${this.lastCompletion.tier}, model ${this.lastCompletion.model}, ` +
            `${Math.round(this.lastCompletion.elapsed_ms)} ms`
          : ""),
    );
  }

  private decisionLine(): string {
    const d = this.lastDecision;
    if (!d) {
      return "";
    }
    const cost = d.cost_usd !== undefined && d.cost_usd !== null ? `, cost $${d.cost_usd.toFixed(6)}` : "";
    return `\nLast request: route ${d.route ?? "none"}, role ${d.role}, tier ${d.tier}, ${Math.round(d.elapsed_ms)} ms${cost}`;
  }

  private offSuffix(): string {
    return this.autocompleteOff ? " · autocomplete off" : "";
  }

  private set(text: string, tooltip: string): void {
    this.item.backgroundColor = undefined;
    this.item.text = text;
    this.item.tooltip = `${tooltip}\nClick for tinyarms options.`;
  }

  dispose(): void {
    this.item.dispose();
  }
}
