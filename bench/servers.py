"""The processes benchmarks talk to: gunicorn serving the project (and the floors of bench/urls.py),
the local sinks of bench/sinks.py, and a load generator of keep-alive client connections."""

import contextlib
import http.client
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent
GUNICORN_WORKERS = 2
CLIENT_CONNECTIONS = 4
WARM_UP_REQUESTS = 20  # per path, before timing: imports and per-process configuration load once

Request = tuple[str, str, bytes | None, dict[str, str]]  # method, path with query, body, headers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert process.poll() is None, f"the server on port {port} exited with {process.returncode}"
            assert time.monotonic() < deadline, f"nothing listens on port {port} after {seconds} s"
            time.sleep(0.1)


def database_url() -> str:
    """The test database, for processes started by the benchmark."""
    config = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{config['USER']}@{config['HOST'] or '127.0.0.1'}:{config['PORT'] or 5432}/{config['NAME']}"
    return f"sqlite:///{config['NAME']}"


@contextlib.contextmanager
def gunicorn() -> Iterator[int]:
    """The project under gunicorn (sync workers, as in production), with bench/urls.py's floors
    beside it; yields the port. Committed rows are visible to it: close the caller's transaction."""
    connection.close()
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "DATABASE_URL": database_url()}
    command = [sys.executable, "-m", "gunicorn", "leadcrm.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    server = subprocess.Popen(
        [*command, "--workers", str(GUNICORN_WORKERS), "--log-level", "warning"], cwd=BASE_DIR, env=env
    )
    try:
        wait_for_port(port, server)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextlib.contextmanager
def sink(kind: str) -> Iterator[int]:
    """A bench/sinks.py server ("buyer" or "smtp") in a process of its own; yields its port."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(BASE_DIR / "bench" / "sinks.py"), kind, str(port)], cwd=BASE_DIR)
    try:
        wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def load(port: int, requests: list[Request], *, expect: tuple[int, ...] = (200, 201, 302)) -> float:
    """Requests per second sending each request once over CLIENT_CONNECTIONS keep-alive connections
    (http.client reconnects by itself when a server closes one, as gunicorn's sync workers do)."""
    queue = list(reversed(requests))
    lock = threading.Lock()
    failures: list[tuple[int, bytes]] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                if not queue:
                    break
                method, path, body, headers = queue.pop()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            content = response.read()
            if response.status not in expect:
                failures.append((response.status, content[:300]))
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENT_CONNECTIONS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert not failures, f"{len(failures)} of {len(requests)} requests failed, e.g. {failures[:2]}"
    return len(requests) / elapsed


def interleaved(port: int, make_requests, rounds: int) -> dict[str, float]:
    """For each kind of request (make_requests(round) returns {name: requests}), its median rate over
    `rounds` short rounds. The kinds take turns within a round, in reverse order every other round, so
    a burst of other work on the machine (or a trend) weighs on floor and project alike. Each kind is
    warmed up first."""
    warm = make_requests(-1)
    for requests in warm.values():
        load(port, requests[:WARM_UP_REQUESTS])
    rates: dict[str, list[float]] = {name: [] for name in warm}
    for round_number in range(rounds):
        kinds = list(make_requests(round_number).items())
        for name, requests in kinds if round_number % 2 == 0 else reversed(kinds):
            rates[name].append(load(port, requests))
    return {name: statistics.median(values) for name, values in rates.items()}
