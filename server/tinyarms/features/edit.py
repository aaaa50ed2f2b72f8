"""Edits in the editor: `tinyarms.edit` and the Refactor / Fix / Document / Write tests code actions.

`tinyarms.edit {uri, range, instruction, version, preview?, answer?}` asks the edit role to
rewrite the range's lines (requests/edit.py says what it is asked) and turns the answer into
a WorkspaceEdit, through `edits/` only:

1. the document must still be at `version` (checked before the model is asked, and again
   after it answered, since that takes seconds); a stale edit is refused;
2. the answer's code is taken out (fences, chatter, explanations) and re-indented to the range;
3. the whole new file must parse if the old one did (Python `ast`, others tree-sitter);
4. the edit is the changed hunks only, carrying the document's version.

With `preview: true` the result is `{diff, edit, decision}` and nothing is applied; otherwise
the server sends `workspace/applyEdit` labelled "tinyarms: <instruction>" (one undo step in
the editor) and returns `{applied, decision, diff}`. A refusal changes nothing and returns
`{applied: false, refused: "<one sentence>", decision}`; the model's raw answer goes to the
log. `answer` (a chat turn's answer, from the chat's "Apply as an edit" action) skips the
model call; the same checks apply.

"Write tests" (`/test`) writes a test file where the project keeps them
(`edits/conventions.py`): a new file is a CreateFile that never overwrites; an existing one
gets the tests appended at its end.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

import attrs
from lsprotocol import converters, types
from pygls import uris

from tinyarms import protocol, tiers
from tinyarms.edits import conventions, diff, workspace
from tinyarms.edits.extract import Refused
from tinyarms.features.base import Feature, Settings, Status
from tinyarms.features.chat import answered_decision, route_actions, wanted
from tinyarms.features.documents import Documents, fs_path
from tinyarms.requests import chat as chat_request
from tinyarms.requests import context
from tinyarms.requests import edit as edit_request
from tinyarms.router.decision import Decision
from tinyarms.router.rules import Rules

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from tinyarms.config import Config

log = logging.getLogger(__name__)

_lsp = converters.get_converter()


@attrs.frozen
class TestsPlan:
    """Where Write tests writes: `existing` is None for a new file, else the text appended to."""

    path: str
    uri: str
    existing: str | None
    version: int | None = None


class EditFeature(Feature):
    def __init__(
        self, server: LanguageServer, settings: Settings, status: Status, routing: Any, documents: Documents
    ) -> None:
        super().__init__(server, settings, status)
        self.routing = routing
        self.documents = documents

    async def edit(self, args: protocol.EditArgs) -> dict[str, Any]:
        start = time.perf_counter()
        config = await self.settings.require()
        decision = edit_decision(config, args.instruction, from_chat=args.answer is not None)
        shown: dict[str, Any] = decision.to_dict()
        document = self.documents.document(args.uri)
        before = document.source
        refused = _stale(args.version, document.version)
        if refused:
            return {"applied": False, "refused": refused, "decision": shown}
        path, roots = fs_path(args.uri), self.documents.roots(args.uri)
        label = context.display_path(path, roots)
        target = edit_request.target(path, before, args.range.start.line, args.range.end.line, args.range.end.character)
        try:
            plan = self._tests_plan(path, roots, args.uri, before) if decision.route == "test" else None
        except Refused as exc:
            return {"applied": False, "refused": exc.reason, "decision": shown}
        budget = chat_request.budget(config, "edit", decision.tier)
        if plan is None:
            code = target.original
            if context.tokens(code) > budget * 3 // 4:
                reason = (f"The selection is too long for the edit role's context budget ({context.tokens(code)} "
                          f"of {budget} tokens), so nothing was changed; select less or raise "
                          "roles.edit.context_tokens.")  # fmt: skip
                return {"applied": False, "refused": reason, "decision": shown}
        else:  # tests of the selection, else of the whole file (cut to fit: it is only read)
            code, _ = context.cut(target.original if target.original.strip() else before, budget // 2)
        last_line = max(target.end_line - 1, target.first_line)
        where = context.Where(path=path, text=before, first_line=target.first_line, last_line=last_line,
                              selection=target.original)  # fmt: skip
        gathered = context.gather(
            args.instruction, budget=max(budget - context.tokens(code) - context.tokens(args.instruction), 0),
            roots=roots, where=where, diagnostics=self.documents.diagnostics(args.uri), include_code=False,
        )  # fmt: skip
        request = chat_request.request_text(args.instruction, decision, config.routes)
        if plan is None:
            messages = edit_request.messages(target, request, gathered, label=label)
        else:
            module = conventions.module_name(path, roots[0]) if roots else os.path.splitext(os.path.basename(path))[0]
            messages = edit_request.tests_messages(code, label, context.display_path(plan.path, roots), module,
                                                   gathered, request)  # fmt: skip
        trace: dict[str, Any] | None = None  # the model call's record; its id names it for tinyarms.feedback
        if args.answer is not None:
            answer_text = args.answer
        else:
            try:
                answer = await tiers.run_role(config, "edit", messages, tier=decision.tier, decision=decision)
            except tiers.AllTiersFailed as exc:  # no tier answered (an empty answer counts): nothing to apply
                log.info("edit: %s", exc)
                return {"applied": False, "refused": _no_answer(exc), "decision": shown}
            answer_text = answer.text
            shown = answered_decision(decision, answer)
            trace = answer.trace
        shown["elapsed_ms"] = round((time.perf_counter() - start) * 1000, 1)
        self.status.notify("decision", {k: shown.get(k) for k in ("route", "role", "tier", "model", "elapsed_ms",
                                                                  "cost_usd")})  # fmt: skip
        try:
            if plan is None:
                after = edit_request.new_text(target, answer_text)
                edit = workspace.document_edit(args.uri, document.version, before, after,
                                               self.server.client_capabilities)  # fmt: skip
                unified = diff.unified(label, before, after)
            else:
                edit, unified = self._tests_change(plan, answer_text, roots)
        except Refused as exc:
            log.info("edit refused: %s\nthe model's answer was:\n%s", exc.reason, answer_text)
            return {"applied": False, "refused": exc.reason, "decision": shown}
        # The model took a while: the document must not have moved on meanwhile.
        now = self.documents.document(args.uri)
        if now.version != document.version or now.source != before:
            return {"applied": False, "refused": _stale(document.version, now.version) or _CHANGED, "decision": shown}
        if args.preview:
            return {"diff": unified, "edit": _lsp.unstructure(edit, types.WorkspaceEdit), "decision": shown,
                    "trace": trace}  # fmt: skip
        label_text = f"tinyarms: {args.instruction.strip() or decision.route or 'edit'}"
        result = await self.server.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label=label_text)
        )
        if not result.applied:
            why = f" ({result.failure_reason})" if result.failure_reason else ""
            return {"applied": False, "refused": f"The editor did not apply the edit{why}.", "decision": shown,
                    "diff": unified}  # fmt: skip
        return {"applied": True, "decision": shown, "diff": unified, "trace": trace}

    # -- the two kinds of change ------------------------------------------------------

    def _tests_plan(self, path: str, roots: list[str], uri: str, text: str) -> TestsPlan:
        """Where Write tests writes: the project's test file (new, or existing to append to), else this file.

        Raises Refused when the test file would lead out of the workspace."""
        in_file = TestsPlan(path=path, uri=uri, existing=text, version=self.documents.version(uri))
        root = roots[0] if roots else os.path.dirname(path)
        test_path = conventions.test_file(path, root)
        if test_path is None:
            return in_file
        real_root = os.path.realpath(root)
        if os.path.commonpath([os.path.realpath(test_path), real_root]) != real_root:
            shown = context.display_path(test_path, roots)
            raise Refused(f"{shown} leads out of the workspace (a symlink), so no test file was written.")
        test_uri = uris.from_fs_path(test_path) or ""
        opened = self.server.workspace.text_documents.get(test_uri)
        if opened is not None:
            return TestsPlan(path=test_path, uri=test_uri, existing=opened.source, version=opened.version)
        if not os.path.lexists(test_path):
            return TestsPlan(path=test_path, uri=test_uri, existing=None)
        try:
            with open(test_path, encoding="utf-8") as handle:
                return TestsPlan(path=test_path, uri=test_uri, existing=handle.read())
        except (OSError, UnicodeDecodeError):
            return in_file  # a test file we cannot read is never replaced

    def _tests_change(self, plan: TestsPlan, answer: str, roots: list[str]) -> tuple[types.WorkspaceEdit, str]:
        after = edit_request.tests_text(plan.existing, answer, plan.path)
        caps = self.server.client_capabilities
        shown = context.display_path(plan.path, roots)
        if plan.existing is None:
            if not workspace.can_create(caps):
                raise Refused("The editor cannot create files through LSP, so the test file was not written.")
            return workspace.new_file(plan.uri, after), diff.unified(shown, "", after)
        edit = workspace.document_edit(plan.uri, plan.version, plan.existing, after, caps)
        return edit, diff.unified(shown, plan.existing, after)

    # -- code actions -----------------------------------------------------------------

    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        """The edit routes' actions (roles/base.toml: Refactor, Fix, Write tests, Document) on a
        non-empty selection: an edit of it."""
        if params.range.start == params.range.end or self.settings.config is None:
            return []
        where = {"uri": params.text_document.uri, "version": self.documents.version(params.text_document.uri),
                 "range": _lsp.unstructure(params.range, types.Range)}  # fmt: skip
        return [
            types.CodeAction(title=title, kind=kind, command=types.Command(
                title=title, command=protocol.EDIT, arguments=[{**where, "instruction": slash}]))
            for title, slash, kind in route_actions(self.settings.config, "edit")
            if wanted(kind, params.context.only)
        ]  # fmt: skip


_CHANGED = "The file changed while the model was answering, so nothing was changed; run the edit again."


def _no_answer(exc: tiers.AllTiersFailed) -> str:
    """AllTiersFailed's message (a line per tier) as one sentence: "tier 'team' answered with no text; ..."."""
    reasons = [line.strip(" -") for line in str(exc).splitlines()[1:] if line.strip(" -")]
    why = "; ".join(reasons) if reasons else str(exc).strip().rstrip(".")
    return f"No model gave a usable answer ({why.rstrip('.')}), so nothing was changed."


def _stale(expected: int | None, current: int | None) -> str | None:
    if expected is None or current is None or expected == current:
        return None
    return (f"The file changed since the edit was asked for (version {expected}, now {current}), "
            "so nothing was changed; run the edit again.")  # fmt: skip


def edit_decision(config: Config, instruction: str, *, from_chat: bool = False) -> Decision:
    """The edit role always; a slash command (`/fix`, `/test`) names the route (and its tier)."""
    role_tier = config.roles.get("edit").tier
    match = Rules(list(config.routes)).slash(instruction.strip())
    if match is not None and match.route is not None and config.routes[match.route].role == "edit":
        return Decision(route=match.route, role="edit", tier=config.routes[match.route].tier or role_tier,
                        score=1.0, margin=1.0, stage="explicit", reason=match.reason)  # fmt: skip
    decision = Decision.explicit("edit", role_tier)
    if from_chat:
        return Decision(route=None, role="edit", tier=role_tier, score=1.0, margin=1.0, stage="explicit",
                        reason="the answer of a chat turn, applied as an edit")  # fmt: skip
    return decision
