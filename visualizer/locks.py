"""The session's readers/writer lock: many ordinary views at once, or one timing run holding the model alone."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any


class ReadWriteLock:
    """Many readers (ordinary views) or one writer (a timing run that must not share the device)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[bool]:
        """Yields True if the model was free at once, False if it had to wait for other requests."""
        with self._cond:
            free = not self._writer and self._readers == 0
            self._writers_waiting += 1
            self._cond.wait_for(lambda: not self._writer and self._readers == 0)
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield free
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class RecentResults:
    """Results of expensive runs kept for a short while, so a class pressing the same button sees one run.

    Keyed by whatever identifies the run (token ids and settings); each entry remembers when it finished.
    """

    def __init__(self, max_age_s: float = 60.0, max_items: int = 16, clock=time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._max_items = max_items
        self._clock = clock
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()

    def get(self, key: Hashable) -> tuple[Any, float] | None:
        """(result, age in seconds) of a run finished less than max_age_s ago, else None."""
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                return None
            age = self._clock() - entry[0]
            if age > self.max_age_s:
                del self._items[key]
                return None
            return entry[1], age

    def put(self, key: Hashable, result: Any) -> None:
        with self._lock:
            self._items[key] = (self._clock(), result)
            self._items.move_to_end(key)
            while len(self._items) > self._max_items:
                self._items.popitem(last=False)


class BytesLRU:
    """A least-recently-used map bounded in bytes, safe across threads: small derived views of shared traces."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, tuple[int, Any]] = OrderedDict()
        self._bytes = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                return None
            self._items.move_to_end(key)
            return entry[1]

    def put(self, key: Hashable, value: Any, n_bytes: int) -> None:
        if n_bytes > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes -= old[0] if old else 0
            self._items[key] = (n_bytes, value)
            self._bytes += n_bytes
            while self._bytes > self.max_bytes:
                _, (size, _) = self._items.popitem(last=False)
                self._bytes -= size

    @property
    def n_bytes(self) -> int:
        """What the entries weighed when they were put (a value whose size changes later is not re-weighed)."""
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


@dataclass
class _Flight:
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class SingleFlight:
    """Concurrent calls for the same key do the work once: the first caller runs it, the others wait for its
    result or its error (a class sending one new prompt at once runs one forward pass, not thirty)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}

    def run(self, key: Hashable, work: Callable[[], Any]) -> Any:
        with self._lock:
            flight = self._flights.get(key)
            owner = flight is None
            if owner:
                flight = self._flights[key] = _Flight()
        if not owner:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.result
        try:
            flight.result = work()
            return flight.result
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()
