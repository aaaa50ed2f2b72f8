"""Checked changes as LSP WorkspaceEdits: a versioned edit of one document, or a new file.

A change to an open document carries the document's version (`documentChanges` with a
`TextDocumentEdit`), so an editor that has moved on since refuses it instead of applying it
to the wrong text. Clients that do not support `documentChanges` get plain `changes` (no
version check on their side; the server checked the version just before).

A new file is a `CreateFile` with `overwrite: false, ignoreIfExists: false` followed by its
text: a client applying it fails rather than replace a file that appeared in the meantime.
Only clients that announce `resourceOperations: ["create", ...]` can do that; `can_create`
tells.
"""

from __future__ import annotations

from lsprotocol import types

from tinyarms.edits import diff


def _workspace_edit_caps(capabilities: types.ClientCapabilities | None) -> types.WorkspaceEditClientCapabilities | None:
    workspace = capabilities.workspace if capabilities else None
    return workspace.workspace_edit if workspace else None


def supports_document_changes(capabilities: types.ClientCapabilities | None) -> bool:
    """`documentChanges`, or resource operations (which only `documentChanges` can carry).

    Neovim 0.11 announces `resourceOperations` but not `documentChanges`, and applies both.
    """
    caps = _workspace_edit_caps(capabilities)
    return bool(caps and (caps.document_changes or caps.resource_operations))


def can_create(capabilities: types.ClientCapabilities | None) -> bool:
    caps = _workspace_edit_caps(capabilities)
    return bool(caps and types.ResourceOperationKind.Create in (caps.resource_operations or []))


def document_edit(
    uri: str, version: int | None, old: str, new: str, capabilities: types.ClientCapabilities | None
) -> types.WorkspaceEdit:
    """The changed hunks of `old` -> `new` in the document `uri` at `version`."""
    edits = diff.text_edits(old, new)
    if not supports_document_changes(capabilities):
        return types.WorkspaceEdit(changes={uri: edits})
    document = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
    return types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(text_document=document, edits=list(edits))])


def new_file(uri: str, text: str) -> types.WorkspaceEdit:
    """Create `uri` (failing if it exists) with `text`. Check `can_create` first."""
    start = types.Position(line=0, character=0)
    insert = types.TextEdit(range=types.Range(start=start, end=start), new_text=text)
    return types.WorkspaceEdit(
        document_changes=[
            types.CreateFile(uri=uri, options=types.CreateFileOptions(overwrite=False, ignore_if_exists=False)),
            types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=None), edits=[insert]
            ),
        ]
    )
