"""Write the JSON Schema of tinyarms TOML files where it ships: the wheel and the VS Code extension.

Run after changing config/schema.py or the shipped presets; tests/test_config_schema.py fails
until both copies are current.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "server"))

from tinyarms.config.jsonschema import SCHEMA_FILE, shipped_schema_text  # noqa: E402

text = shipped_schema_text()
for target in (SCHEMA_FILE, REPO / "vscode-client" / "schemas" / "tinyarms.schema.json"):
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(target)
