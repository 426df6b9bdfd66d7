"""Small helpers shared by test modules."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def tiny_train_args(dataset, output_dir, *extra) -> list[str]:
    """`llmrl train` arguments for the built-in tiny model: dataset, output folder, then any extra arguments."""
    return ["train", "--model", "builtin:tiny", "--dataset", str(dataset), "--output-dir", str(output_dir), *extra]


class FakeRewardServer:
    """An OpenAI-compatible chat-completions server that scores by answer length, failing on demand."""

    def __init__(self, failures: int = 0, status: int = 503):
        self.requests, self.failures, self.status = [], failures, status
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if server.failures > 0:
                    server.failures -= 1
                    self.send_response(server.status)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                answer = body["messages"][-1]["content"]
                reply = {
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": f"reward:{len(answer)}"}}]
                }
                payload = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
