"""Community presets: install, update, verify and list the presets `extends = "NAME"` finds.

Shipped presets live in `roles/` (inside the wheel); installed ones in the user data dir,
pinned by sha256 and checked before they are written (no secrets, `extends` by name only,
valid on top of what they extend). The config loader looks an installed preset up before
a shipped one, and `config show --explain` names where it was installed from.
"""

from tinyarms.presets.store import (
    Installed,
    PresetChanged,
    PresetEntry,
    diff,
    entries,
    get,
    install,
    remove,
    update,
)
from tinyarms.presets.verify import PresetError, check

__all__ = [
    "Installed",
    "PresetChanged",
    "PresetEntry",
    "PresetError",
    "check",
    "diff",
    "entries",
    "get",
    "install",
    "remove",
    "update",
]
