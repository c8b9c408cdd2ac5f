"""Local servers the benchmarks send to, each run in a process of its own (so the GIL of the process
that sends is not theirs): `python bench/sinks.py buyer PORT` or `python bench/sinks.py smtp PORT`.

- buyer: a buyer's CRM taking leads, a ThreadingHTTPServer speaking HTTP/1.1 with keep-alive (so a
  client's connection pool matters), answering every POST as accepted, without Nagle's delay (as web servers do).
- smtp: an aiosmtpd server taking every message and dropping it.
- bidders: ping/post buyers, one server per port (`python bench/sinks.py bidders PORT,LATENCY_MS
  ...`; a latency of -1 hangs). A ping waits its buyer's latency, then bids more the slower the
  buyer (so the slowest one that answers wins and is posted to); a post is accepted at once.
"""

import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACCEPTED = b'{"status":"accepted","id":"B-1"}'


class Buyer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the connection serves the client's next request
    # The headers and the body go out as two writes: without TCP_NODELAY the body waits for the
    # client's delayed ACK of the headers (40 ms on Linux), which would be all that is measured.
    disable_nagle_algorithm = True

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ACCEPTED)))
        self.end_headers()
        self.wfile.write(ACCEPTED)

    def log_message(self, *args):
        pass


def serve_buyer(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), Buyer)
    server.daemon_threads = True
    server.request_queue_size = 128
    server.serve_forever()


class Bidder(Buyer):
    latency_ms = 0

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.endswith("/ping"):
            if self.latency_ms < 0:
                time.sleep(3600)  # hangs: the auction must not wait for it
            time.sleep(self.latency_ms / 1000)
            answer = json.dumps({"bid": 5 + self.latency_ms / 100, "bid_id": f"bid-{self.latency_ms}"}).encode()
        else:
            answer = ACCEPTED
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def serve_bidders(specs: list[str]) -> None:
    for spec in specs:
        port, latency = (int(part) for part in spec.split(","))
        handler = type(f"Bidder{port}", (Bidder,), {"latency_ms": latency})
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        server.daemon_threads = True
        server.request_queue_size = 128
        threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Event().wait()


class Inbox:
    async def handle_DATA(self, server, session, envelope):
        return "250 Message accepted for delivery"


def serve_smtp(port: int) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(Inbox(), hostname="127.0.0.1", port=port)
    controller.start()
    threading.Event().wait()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if sys.argv[1] == "bidders":
        serve_bidders(sys.argv[2:])
    else:
        kind, port = sys.argv[1], int(sys.argv[2])
        {"buyer": serve_buyer, "smtp": serve_smtp}[kind](port)
