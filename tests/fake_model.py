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
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.url = ""

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
                done = {**message, "content": [{"type": "text", "text": REPLY}], "stop_reason": "end_turn"}
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
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                ),
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": REPLY}},
                ),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
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
def fake_model() -> Iterator[FakeModel]:
    model = FakeModel()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(model))
    model.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield model
    finally:
        server.shutdown()
        server.server_close()
