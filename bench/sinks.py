"""Local servers the benchmarks send to, each run in a process of its own (so the GIL of the process
that sends is not theirs): `python bench/sinks.py buyer PORT` or `python bench/sinks.py smtp PORT`.

- buyer: a buyer's CRM taking leads, a ThreadingHTTPServer speaking HTTP/1.1 with keep-alive (so a
  client's connection pool matters), answering every POST as accepted, without Nagle's delay (as web servers do).
- smtp: an aiosmtpd server taking every message and dropping it.
"""

import signal
import sys
import threading
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
    kind, port = sys.argv[1], int(sys.argv[2])
    {"buyer": serve_buyer, "smtp": serve_smtp}[kind](port)
