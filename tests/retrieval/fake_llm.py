"""A tiny OpenAI-compatible chat-completions server on 127.0.0.1, for tests (no network)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextmanager
def fake_llm(reply: str = "Aspirin helps [1].", status: int = 200,
             stream_style: str = "sse") -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Yield ``(url, requests seen)``; answers every POST with ``reply`` (streamed when asked).

    ``stream_style`` imitates endpoints that stream badly: ``"sse"`` (well-formed, ends with
    [DONE]), ``"azure"`` (a first chunk with no choices), ``"cut"`` (no [DONE], no finish_reason),
    ``"json"`` (ignores stream and answers one JSON completion), ``"pings"`` (keep-alive comments
    every 0.3 s for 3 s before the first chunk)."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"body": body, "auth": self.headers.get("Authorization")})
            if status != 200:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"error": {"message": "model overloaded"}}')
                return
            self.send_response(200)
            if body.get("stream") and stream_style != "json":
                import time

                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                if stream_style == "azure":
                    self.wfile.write(b'data: {"choices": [], "prompt_filter_results": []}\n\n')
                if stream_style == "pings":
                    for _ in range(10):
                        self.wfile.write(b": ping\n\n")
                        self.wfile.flush()
                        time.sleep(0.3)
                for word in reply.split(" "):
                    chunk = {"choices": [{"index": 0, "delta": {"content": word + " "}}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                if stream_style != "cut":
                    self.wfile.write(b"data: [DONE]\n\n")
                return
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}]}
            self.wfile.write(json.dumps(answer).encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions", seen
    finally:
        server.shutdown()
        server.server_close()
