"""One agent run: the model on the agent role's tier chain, calling tools, within limits.

Each step is one `tiers.run_role(config, "agent", messages, tools=...)` call (so budgets,
retries, fallbacks, cooldowns and the decision trace apply as for every role), then the
tool calls it asked for, each result appended for the next step. The run ends when the
model answers without a tool call, or at the first limit of `[agent]`: steps (16), wall
time (300 s), tokens (200k), cost per run ($0.50), malformed calls (3). Whatever stopped
it, the report says what was done: every step with its tier and tool calls, every file
changed with its diff, tokens, cost and why it stopped.

A malformed call (unknown tool, arguments that are not JSON or do not match the tool's
schema) goes back to the model as an error result so it can try again; past
`max_malformed` of them the run stops. `cancel()` stops the run within a second: the
model call or tool call in flight is cancelled (a command's process group is killed,
a search thread stops at its next file) and the run reports "cancelled".
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

from attrs import define, field

from tinyarms import tiers
from tinyarms.agent.mcp import McpServerSpec, mcp_tools
from tinyarms.agent.tools import Tool, ToolContext
from tinyarms.agent.workspace import ToolError
from tinyarms.backends import ToolCall, ToolSpec
from tinyarms.config import Config
from tinyarms.router.decision import Decision

log = logging.getLogger(__name__)

SYSTEM = (
    "You are tinyarms, a coding agent working inside the user's project. Use the tools: look at "
    "files (list_files, search, read_file) before changing them, and make the smallest change that "
    "does the job (edit_file; line numbers come from read_file). Paths are relative to the "
    "workspace root. When the goal is done, or cannot be done, reply with a short summary of what "
    "you did and no tool call."
)
LAST_STEP = "This is your last step: no more tools. Reply with a short summary of what you did and what is left."
RESULT_PREVIEW = 600  # characters of a tool result kept in the report


@define
class ToolCallRecord:
    id: str
    name: str
    arguments: Any  # the parsed arguments, or the raw text when they did not parse
    ok: bool
    result: str  # the start of what the model was told


@define
class StepRecord:
    index: int
    tier: str | None
    model: str | None
    route: str | None
    stage: str | None
    text: str
    tool_calls: list[ToolCallRecord] = field(factory=list)
    tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0


@define
class FileRecord:
    path: str
    diff: str
    created: bool


@define
class Report:
    goal: str
    steps: list[StepRecord]
    files: list[FileRecord]
    tokens: int
    cost_usd: float
    stopped: str  # one sentence: why the run ended
    stop: str  # done | steps | time | tokens | cost | malformed | cancelled | error
    answer: str  # the model's last words


class Events:
    """What a front door hears while a run goes on. Override what you show."""

    def step_started(self, index: int) -> None: ...

    def text(self, delta: str) -> None: ...

    def restart(self, reason: str) -> None: ...

    def tool_started(self, call: ToolCall, tool: Tool | None, arguments: Any) -> None: ...

    def tool_finished(self, call: ToolCall, ok: bool, result: str, ctx: ToolContext) -> None: ...

    def step_finished(self, step: StepRecord) -> None: ...


class _Stop(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Run:
    """Build one with the tools and context, `await run.execute()`, `run.cancel()` from elsewhere."""

    def __init__(
        self,
        config: Config,
        goal: str,
        ctx: ToolContext,
        tools: list[Tool],
        *,
        run_id: str | None = None,
        context: str = "",
        decision: Decision | None = None,
        events: Events | None = None,
        history: list[dict[str, Any]] | None = None,
        mcp_servers: list[McpServerSpec] | None = None,
    ) -> None:
        self.id = run_id or uuid.uuid4().hex[:12]
        self.config = config
        self.settings = config.agent
        self.goal = goal
        self.ctx = ctx
        self.tools = {tool.name: tool for tool in tools}
        self.mcp_servers = mcp_servers or []
        self.decision = decision or Decision.explicit("agent", config.roles.agent.tier)
        self.events = events or Events()
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, *(history or [])]
        user = f"{goal}\n\n{context}" if context else goal
        self.messages.append({"role": "user", "content": user})
        self.steps: list[StepRecord] = []
        self.tokens = 0
        self.cost_usd = 0.0
        self.malformed = 0
        self.report: Report | None = None
        self._cancelled = False
        self._current: asyncio.Task[Any] | None = None
        self._deadline = 0.0

    # -- control --------------------------------------------------------------------------

    def cancel(self) -> bool:
        """Stop the run at once. True when it was still going."""
        if self.report is not None or self._cancelled:
            return False
        self._cancelled = True
        self.ctx.stop.set()
        if self._current is not None:
            self._current.cancel()
        return True

    async def _guard(self, coro: Any, what: str) -> Any:
        """Await `coro` as its own task so cancel() and the time limit can stop it mid-way."""
        if self._cancelled:
            coro.close()
            raise _Stop("cancelled", "the run was cancelled")
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            coro.close()
            raise self._time_stop(what)
        task = asyncio.ensure_future(coro)
        self._current = task
        try:
            return await asyncio.wait_for(task, remaining)
        except TimeoutError:
            raise self._time_stop(what) from None
        except asyncio.CancelledError:
            if self._cancelled:
                raise _Stop("cancelled", f"the run was cancelled during {what}") from None
            raise
        finally:
            self._current = None

    def _time_stop(self, what: str) -> _Stop:
        limit = f"{self.settings.max_seconds:g} s, agent.max_seconds"
        return _Stop("time", f"the time limit ({limit}) ran out during {what}")

    # -- the loop ---------------------------------------------------------------------------

    async def execute(self) -> Report:
        started = time.monotonic()
        self._deadline = started + self.settings.max_seconds
        # The loop's outcome is caught inside the MCP servers' context: an exception through
        # their anyio task groups would come out wrapped in an ExceptionGroup.
        try:
            async with mcp_tools(self.mcp_servers, self.ctx.workspace.primary) as extra:
                for tool in extra:
                    self.tools.setdefault(tool.name, tool)
                kind, message, answer = await self._loop()
        except asyncio.CancelledError:  # the caller itself was cancelled (an LSP $/cancelRequest)
            self.ctx.stop.set()
            self.report = self._report("cancelled", "the request was cancelled", "", time.monotonic() - started)
            raise
        self.report = self._report(kind, message, answer or self._last_text(), time.monotonic() - started)
        log.info("agent run %s stopped (%s) after %d steps: %s", self.id, kind, len(self.steps), message)
        return self.report

    async def _loop(self) -> tuple[str, str, str]:
        """Steps until one ends the run: (stop kind, why, the model's answer)."""
        try:
            while True:
                self._check_limits()
                answer = await self._step()
                if answer is not None:
                    return "done", "the model finished", answer
        except _Stop as stop:
            return stop.kind, str(stop), ""
        except tiers.BudgetExceeded as exc:
            return "cost", str(exc).splitlines()[0], ""
        except tiers.AllTiersFailed as exc:
            return "error", str(exc).replace("\n", " "), ""

    def _check_limits(self) -> None:
        s = self.settings
        if len(self.steps) >= s.max_steps:
            raise _Stop("steps", f"the step limit ({s.max_steps}, agent.max_steps) was reached")
        if s.max_tokens and self.tokens >= s.max_tokens:
            raise _Stop("tokens", f"the token limit ({s.max_tokens}, agent.max_tokens) was reached ({self.tokens})")
        if s.max_cost_usd and self.cost_usd >= s.max_cost_usd:
            raise _Stop(
                "cost", f"the cost limit (${s.max_cost_usd:g}, agent.max_cost_usd) was reached (${self.cost_usd:.4f})"
            )
        if self.malformed > s.max_malformed:
            raise _Stop(
                "malformed",
                f"the model made {self.malformed} malformed tool calls (agent.max_malformed = {s.max_malformed})",
            )

    async def _step(self) -> str | None:
        """One model turn and its tool calls. Returns the answer when the model called no tool."""
        index = len(self.steps) + 1
        self.events.step_started(index)
        started = time.monotonic()
        # The last step allowed offers no tools, so the run ends with the model's summary.
        last = index >= self.settings.max_steps and index > 1
        specs = [] if last else [ToolSpec(t.name, t.description, t.parameters) for t in self.tools.values()]
        messages = [*self.messages, {"role": "user", "content": LAST_STEP}] if last else self.messages
        answer: tiers.Answer = await self._guard(
            tiers.run_role(
                self.config, "agent", messages, tier=self.decision.tier, decision=self.decision,
                on_delta=self.events.text, on_restart=self.events.restart, tools=specs,
            ),  # fmt: skip
            f"step {index} (the model)",
        )
        tokens = answer.usage.prompt_tokens + answer.usage.completion_tokens
        self.tokens += tokens
        self.cost_usd += answer.cost_usd
        step = StepRecord(
            index, answer.tier, answer.model, self.decision.route, self.decision.stage, answer.text,
            tokens=tokens, cost_usd=round(answer.cost_usd, 8),
        )  # fmt: skip
        self.steps.append(step)
        if last and answer.tool_calls:
            self.events.step_finished(step)
            raise _Stop("steps", f"the step limit ({self.settings.max_steps}, agent.max_steps) was reached")
        turn: dict[str, Any] = {"role": "assistant", "content": answer.text}
        if answer.tool_calls:
            turn["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in answer.tool_calls]
        self.messages.append(turn)
        try:
            for call in answer.tool_calls:
                ok, result, arguments = await self._call(call, index)
                step.tool_calls.append(ToolCallRecord(call.id, call.name, arguments, ok, result[:RESULT_PREVIEW]))
                self.messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name, "content": result})
        finally:
            step.latency_ms = round((time.monotonic() - started) * 1000, 1)
            self.events.step_finished(step)
        return None if answer.tool_calls else answer.text

    async def _call(self, call: ToolCall, index: int) -> tuple[bool, str, Any]:
        tool = self.tools.get(call.name)
        arguments: Any = call.arguments
        problem = None
        if tool is None:
            problem = f"there is no tool named {call.name!r}; the tools are: {', '.join(self.tools)}"
        else:
            arguments, problem = _parse_arguments(tool, call.arguments)
        self.events.tool_started(call, tool, arguments)
        if problem is not None:
            self.malformed += 1
            result = f"error: malformed tool call: {problem}"
            self.events.tool_finished(call, False, result, self.ctx)
            return False, result, arguments
        assert tool is not None
        try:
            result = await self._guard(tool.handler(self.ctx, arguments), f"step {index} ({call.name})")
            ok = True
        except ToolError as exc:
            result, ok = f"error: {exc}", False
        except _Stop:
            self.events.tool_finished(call, False, "cancelled", self.ctx)
            raise
        except Exception as exc:  # a tool bug must not end the run without a report
            log.exception("tool %s failed", call.name)
            result, ok = f"error: the tool failed ({type(exc).__name__}: {exc})", False
        self.events.tool_finished(call, ok, result, self.ctx)
        return ok, result, arguments

    # -- the report -------------------------------------------------------------------------

    def _last_text(self) -> str:
        return next((s.text for s in reversed(self.steps) if s.text), "")

    def _report(self, kind: str, message: str, answer: str, elapsed: float) -> Report:
        from tinyarms.edits import diff

        files = []
        for change in self.ctx.changes.values():
            rel = self.ctx.workspace.relative(change.path)
            files.append(FileRecord(rel, diff.unified(rel, change.before or "", change.after), change.before is None))
        stopped = f"{message} after {len(self.steps)} step{'s' if len(self.steps) != 1 else ''} in {elapsed:.1f} s"
        return Report(self.goal, self.steps, files, self.tokens, round(self.cost_usd, 8), stopped, kind, answer)


def _parse_arguments(tool: Tool, raw: str) -> tuple[Any, str | None]:
    """The call's arguments as an object that fits the tool's schema, or why not."""
    import jsonschema

    try:
        arguments = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        return raw, f"the arguments are not valid JSON ({exc.msg} at character {exc.pos})"
    if not isinstance(arguments, dict):
        return arguments, "the arguments must be a JSON object"
    try:
        jsonschema.validate(arguments, tool.parameters)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "arguments"
        return arguments, f"{where}: {exc.message} (schema of {tool.name}: {json.dumps(tool.parameters)})"
    return arguments, None

