#!/usr/bin/env python3
"""Manual-check server for the widget: serves dist/ like `parlo serve` does and fakes the
widget API, so a page on another origin can open the widget and get a streamed answer.

Not part of the product and not a test harness; `parlo serve` is the real thing.

    python3 widget/loader/devserver.py            # widget + fake API on :8787
    python3 -m http.server -d widget/loader 8080  # the host page, another origin
    open http://localhost:8080/demo.html

FAKE_API=down makes every API call fail with 503, to see the error state.
"""

import json
import os
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DIST = os.environ.get("PARLO_DIST") or os.path.join(ROOT, "dist")
TYPES = {".js": "text/javascript; charset=utf-8", ".wasm": "application/wasm", ".json": "application/json"}
ANSWER = [
    "Here is **markdown** with a list:\n\n",
    "- one\n- two\n\n",
    "And a formula: $e^{i\\pi} + 1 = 0$, and a display one:\n\n",
    "$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$\n\n",
    "A [link](https://example.com) and `code`. <script>alert(1)</script>",
]
HISTORY = []


class Handler(BaseHTTPRequestHandler):
    def cors(self, api):
        origin = self.headers.get("Origin")
        if api and origin:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
            self.send_header("Access-Control-Allow-Methods", "GET, POST, DELETE")
            self.send_header("Access-Control-Expose-Headers", "Retry-After")
            self.send_header("Vary", "Origin")
        elif not api:
            self.send_header("Access-Control-Allow-Origin", "*")

    def json(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.cors(True)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_OPTIONS(self):
        self.send_response(204)
        self.cors(self.path.startswith("/api/"))
        self.end_headers()

    def do_GET(self):
        if self.path.startswith("/api/"):
            return self.api("GET")
        manifest = json.load(open(os.path.join(DIST, "manifest.json")))
        path = self.path.split("?")[0]
        if path == "/widget.js":
            path = "/widget/v%s/widget.js" % manifest["latest"]
        elif path == "/widget/versions.json":
            path = "/manifest.json"
        m = re.fullmatch(r"/widget/v(\d+\.\d+\.\d+)\.js", path)
        if m:
            path = "/widget/v%s/widget.js" % m.group(1)
        m = re.fullmatch(r"/widget/v(\d+\.\d+\.\d+)/([A-Za-z0-9_.]+)", path)
        if not (m and m.group(2) in manifest["versions"].get(m.group(1), {}).get("files", {})) and path != "/manifest.json":
            self.send_error(404)
            return
        file = os.path.join(DIST, path.lstrip("/"))
        data = open(file, "rb").read()
        self.send_response(200)
        self.cors(False)
        self.send_header("Content-Type", TYPES.get(os.path.splitext(file)[1], "application/octet-stream"))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        self.api("POST")

    def do_DELETE(self):
        self.api("DELETE")

    def api(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if os.environ.get("FAKE_API") == "down":
            return self.json(503, {"error": {"code": "upstream_unavailable", "message": "down"}})
        route = self.path.split("?")[0]
        if route == "/api/widget/v1/session" and method == "POST":
            return self.json(200, {
                "token": "t-%d" % time.time(), "expires_in": 900, "conversation": "c1", "resume": "r1",
                "bot": {"name": "Demo assistant", "greeting": "Hello! Ask me *anything*.",
                        "theme_color": "#0f766e", "language": "en"},
            })
        if not (self.headers.get("Authorization") or "").startswith("Bearer t-"):
            return self.json(401, {"error": {"code": "invalid_token", "message": "no token"}})
        if route == "/api/widget/v1/messages" and method == "GET":
            return self.json(200, {"messages": HISTORY})
        if route == "/api/widget/v1/conversation" and method == "DELETE":
            HISTORY.clear()
            self.send_response(204)
            self.cors(True)
            self.end_headers()
            return
        if route == "/api/widget/v1/attachments" and method == "POST":
            return self.json(200, {"attachment": {"id": "a1", "file_name": "upload"}, "text": "…"})
        if route == "/api/widget/v1/messages" and method == "POST":
            content = json.loads(body or b"{}").get("content", "")
            HISTORY.append({"id": "u%d" % len(HISTORY), "role": "user", "content": content, "status": "complete", "created_at": ""})
            self.send_response(200)
            self.cors(True)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            for chunk in ANSWER:
                for i in range(0, len(chunk), 7):
                    piece = json.dumps({"text": chunk[i:i + 7]})
                    self.wfile.write(("event: delta\ndata: %s\n\n" % piece).encode())
                    self.wfile.flush()
                    time.sleep(0.01)
            HISTORY.append({"id": "a%d" % len(HISTORY), "role": "assistant", "content": "".join(ANSWER), "status": "complete", "created_at": ""})
            self.wfile.write(b'event: done\ndata: {"message_id":"m1","status":"complete"}\n\n')
            return
        self.json(404, {"error": {"code": "not_found", "message": "no such route"}})

    def log_message(self, fmt, *args):
        sys.stderr.write("devserver: " + fmt % args + "\n")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8787
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
