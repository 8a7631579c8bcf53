"""A stand-in for the Anthropic Messages API on loopback, for running the real Claude Code CLI
(`claude -p`) where no model can be reached: it keeps every request Claude Code sends and answers
each with one short text reply. Only the model is replaced: the CLI reads the command files, runs
the hooks and builds the request itself.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPLY = "Done."


class FakeModel:
    """`script`: the model's turns in the conversation, in order: {"text": ...} or {"tool": name,
    "input": {...}} (a tool call, which Claude Code runs and answers in its next request). Once the
    script is used up, or for a side request (one without tools), the reply is REPLY."""

    def __init__(self, script: list[dict[str, Any]] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self.script = list(script or [])

    def next_turn(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("tools") and self.script:
            return self.script.pop(0)
        return {"text": REPLY}

    def tool_results(self) -> list[dict[str, Any]]:
        """Every tool_result block Claude Code sent back, in order."""
        out = []
        for request in self.requests:
            for message in request.get("messages", []):
                content = message.get("content")
                if isinstance(content, list):
                    out += [
                        block for block in content if isinstance(block, dict) and block.get("type") == "tool_result"
                    ]
        seen, unique = set(), []
        for block in out:  # each request repeats the conversation so far
            if block.get("tool_use_id") not in seen:
                seen.add(block.get("tool_use_id"))
                unique.append(block)
        return unique

    def texts(self, request: dict[str, Any]) -> list[str]:
        """Every text block of a request: the system prompt's and the messages'."""
        out: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if node.get("type") == "text" and isinstance(node.get("text"), str):
                    out.append(node["text"])
                else:
                    for value in node.values():
                        walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)
            elif isinstance(node, str) and node:
                out.append(node)

        walk(request.get("system"))
        walk(request.get("messages"))
        return out

    def conversation_requests(self) -> list[dict[str, Any]]:
        """The requests that carry the conversation (Claude Code may also send small side requests,
        e.g. for a title; those have no tools)."""
        return [r for r in self.requests if r.get("tools")]


def _handler(model: FakeModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            model.requests.append(body)
            turn = model.next_turn(body)
            if "tool" in turn:
                block = {
                    "type": "tool_use",
                    "id": f"toolu_{len(model.requests):04d}",
                    "name": turn["tool"],
                    "input": {},
                }
                delta = {"type": "input_json_delta", "partial_json": json.dumps(turn.get("input", {}))}
                stop = "tool_use"
            else:
                block, delta, stop = (
                    {"type": "text", "text": ""},
                    {"type": "text_delta", "text": turn["text"]},
                    "end_turn",
                )
            name = body.get("model", "claude")
            message = {
                "id": f"msg_{len(model.requests)}",
                "type": "message",
                "role": "assistant",
                "model": name,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1},
            }
            if not body.get("stream"):
                whole = (
                    {**block, "input": turn.get("input", {})}
                    if "tool" in turn
                    else {"type": "text", "text": turn["text"]}
                )
                done = {**message, "content": [whole], "stop_reason": stop}
                data = json.dumps(done).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            events = [
                ("message_start", {"type": "message_start", "message": message}),
                ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": 1},
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            ]
            for kind, data in events:
                self.wfile.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())

        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()

    return Handler


@contextmanager
def fake_model(script: list[dict[str, Any]] | None = None) -> Iterator[FakeModel]:
    model = FakeModel(script)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(model))
    model.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield model
    finally:
        server.shutdown()
        server.server_close()
