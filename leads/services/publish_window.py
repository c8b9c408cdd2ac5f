"""At most one broker publish per queue and window in a process.

Every committed lead wakes its queues' workers with a task. Under load those tasks are redundant: a
draining worker claims its queue's other due rows anyway, and each publish cost a web process more
CPU than a database round trip. So a queue published less than a window ago has its new ids held
and sent as one task when the window ends, by a thread of this process; a lone lead still goes at
once. Held ids are safe if the process dies before its thread sends them: their rows are in the
database, and the sweeper sends what no task took (`outbox_sweep`).
"""

import atexit
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from django.db import connections

Batch = tuple[str | None, int, list[int]]  # queue, the kind's batch size, entry ids


class PublishWindow:
    def __init__(self, publish: Callable[[list[Batch]], None], window: Callable[[], float]) -> None:
        self._publish = publish  # called with the batches to send; it handles the broker's errors
        self._window = window  # seconds, read at each use (settings may change in tests)
        self._pid = -1
        atexit.register(self.flush)

    def _start_in_this_process(self) -> None:
        # Lazily, and again after a fork: a forked child has the parent's lock state and no thread.
        self._pid = os.getpid()
        self._condition = threading.Condition()
        self._held: dict[tuple[str | None, int], list[int]] = defaultdict(list)
        self._last_sent: dict[tuple[str | None, int], float] = {}
        self._thread: threading.Thread | None = None

    def send(self, batches: list[Batch]) -> None:
        """Publish now what may go now; hold the rest for the window's end."""
        window = self._window()
        if window <= 0:
            self._publish(batches)
            return
        if self._pid != os.getpid():
            self._start_in_this_process()
        now, now_batches = time.monotonic(), []
        with self._condition:
            for queue, size, ids in batches:
                key = (queue, size)
                if key not in self._held and now - self._last_sent.get(key, -window) >= window:
                    self._last_sent[key] = now
                    now_batches.append((queue, size, ids))
                else:
                    self._held[key] += ids
            if self._held:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._send_held, name="outbox-publish", daemon=True)
                    self._thread.start()
                self._condition.notify()
        if now_batches:
            self._publish(now_batches)

    def flush(self) -> None:
        """Send everything held now (the process is exiting, or a test wants it sent)."""
        if self._pid == os.getpid():
            with self._condition:
                due = self._take(window=None)
            if due:
                self._publish(due)

    def reset(self) -> None:
        """Send what is held and forget when each queue was last published (tests start afresh)."""
        self.flush()
        if self._pid == os.getpid():
            with self._condition:
                self._last_sent.clear()

    def _take(self, *, window: float | None) -> list[Batch]:
        """Take the held ids of queues last published `window` seconds ago or more (None: all)."""
        now, taken = time.monotonic(), []
        for key in [key for key in self._held if window is None or now - self._last_sent[key] >= window]:
            ids = self._held.pop(key)
            self._last_sent[key] = now
            taken.append((key[0], key[1], ids))
        return taken

    def _send_held(self) -> None:
        while True:
            with self._condition:
                while not self._held:
                    self._condition.wait()
                window = self._window()
                next_at = min(self._last_sent[key] + window for key in self._held)
                wait = next_at - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                due = self._take(window=window)
            if due:
                self._publish(due)
                connections.close_all()  # this thread's own: a failed publish marks its rows in the database
