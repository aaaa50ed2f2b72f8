// VS Code settings -> tinyarms' "editor settings" config layer.
//
// Only the keys a user actually set are sent, in the TOML schema's shape
// ({"roles": {"chat": {"tier": "local"}}}), so every other value keeps coming from the
// TOML layers below. The server validates this layer like any other.
import * as vscode from "vscode";

export const ROLES = ["autocomplete", "chat", "edit", "agent"] as const;
const ROLE_KEYS = ["tier", "enabled"] as const;

export type Layer = Record<string, unknown>;

export function editorSettingsLayer(): Layer {
  const config = vscode.workspace.getConfiguration("tinyarms");
  const layer: Layer = {};
  const preset = config.get<string | null>("preset");
  if (typeof preset === "string" && preset.trim()) {
    layer.extends = preset.trim();
  }
  const roles: Record<string, Record<string, unknown>> = {};
  for (const role of ROLES) {
    for (const key of ROLE_KEYS) {
      const value = config.get<unknown>(`roles.${role}.${key}`);
      if (value === null || value === undefined || value === "") {
        continue;
      }
      (roles[role] ??= {})[key] = value;
    }
  }
  if (Object.keys(roles).length > 0) {
    layer.roles = roles;
  }
  return layer;
}

/** Settings whose change needs a new server process rather than a config reload. */
export function needsRestart(event: vscode.ConfigurationChangeEvent): boolean {
  return event.affectsConfiguration("tinyarms.python");
}

export function affectsLayer(event: vscode.ConfigurationChangeEvent): boolean {
  return event.affectsConfiguration("tinyarms.preset") || event.affectsConfiguration("tinyarms.roles");
}
