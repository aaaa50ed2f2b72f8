"""Tool calls for local llama.cpp tiers: grammar-constrained JSON instead of a native format.

Small local models (the embedded Gemma 3 270M) have no tool-call format of their own and
rarely write valid JSON unprompted. So the request's tools become one JSON schema, a
`oneOf` of `{"tool": NAME, "arguments": <that tool's schema>}` per tool and
`{"answer": TEXT}` to finish, which the model process turns into a llama.cpp grammar
(JSON-schema -> GBNF) that every sampled token must fit: the model cannot emit a call
that does not parse or names a tool that does not exist. The conversation's tool turns
are written as plain text the model can read.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tinyarms.backends import ChatRequest, Delta, Event, ToolCall

INSTRUCTION = (
    "You act by replying with one JSON object and nothing else. Use the tools to do the goal, one "
    'call per reply: {{"tool": "<tool name>", "arguments": {{<its arguments>}}}}. Only when the goal '
    'is done, reply {{"answer": "<one sentence on what you did>"}}.\n'
    "Tools:\n{tools}"
)


def output_schema(request: ChatRequest) -> dict[str, Any]:
    choices: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"const": tool.name}, "arguments": tool.parameters},
            "required": ["tool", "arguments"],
            "additionalProperties": False,
        }
        for tool in request.tools
    ]
    choices.append(
        {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
         "additionalProperties": False}
    )  # fmt: skip
    return {"oneOf": choices}


def build_messages(messages: list[dict[str, Any]], request: ChatRequest) -> list[dict[str, str]]:
    """Tool turns as text: the model's call as the JSON it wrote, each result as the next question."""
    listed = "\n".join(f"- {_signature(t.name, t.parameters)}: {t.description}" for t in request.tools)
    out: list[dict[str, str]] = [{"role": "system", "content": INSTRUCTION.format(tools=listed)}]
    for m in messages:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            for call in m["tool_calls"]:
                try:
                    arguments = json.loads(call["arguments"] or "{}")
                except ValueError:
                    arguments = call["arguments"]
                out.append({"role": "assistant", "content": json.dumps({"tool": call["name"], "arguments": arguments})})
        elif m.get("role") == "tool":
            out.append({"role": "user", "content": f"Result of {m.get('name', 'the tool')}:\n{m['content']}"})
        elif m.get("role") == "assistant":
            out.append({"role": "assistant", "content": json.dumps({"answer": m.get("content") or ""})})
        else:
            out.append({"role": str(m["role"]), "content": str(m.get("content") or "")})
    return out


def _signature(name: str, parameters: dict[str, Any]) -> str:
    """`read_file(path, start_line?, end_line?)`: short, since the grammar enforces the types
    (every prompt token costs a small local model time)."""
    required = set(parameters.get("required") or [])
    names = [p if p in required else f"{p}?" for p in (parameters.get("properties") or {})]
    return f"{name}({', '.join(names)})"


def parse(text: str, index: int, *, tools_offered: bool = True) -> list[Event]:
    """The model's JSON as a tool call or the answer. Text that is not the expected JSON (cut
    off at max_tokens) becomes a call the agent reports back to the model as malformed, unless
    no tool was offered: then it can only be an answer cut short, and what it said stands."""
    try:
        data = json.loads(text)
    except ValueError:
        if not tools_offered:
            cut = re.match(r'\s*\{\s*"answer"\s*:\s*"(.*)', text, re.S)
            said = (cut.group(1) if cut else text).rstrip('"} \n')
            return [Delta(said.replace("\\n", "\n").replace('\\"', '"') or "(done)")]
        return [ToolCall(f"local_{index}", "(unparsed)", text)]
    if isinstance(data, dict) and isinstance(data.get("answer"), str):
        return [Delta(data["answer"])] if data["answer"] else [Delta("(done)")]
    if isinstance(data, dict) and isinstance(data.get("tool"), str):
        return [ToolCall(f"local_{index}", data["tool"], json.dumps(data.get("arguments", {})))]
    return [ToolCall(f"local_{index}", "(unparsed)", text)]
