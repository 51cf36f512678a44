"""Same bytes under two names are recognized once: the second waits for the first and reuses its answer.

With several processes on one journal the same holds across them: the lock is also a claim on the
result key (:meth:`Leases.exclusive`), held with a lease like a file's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dropscribe.service.leases import Leases


class ContentLocks:
    """One lock per result key, held while that key's answer is looked up or bought.

    One instance serves the whole process, across reloads (a reload builds a new pipeline while the old
    one still finishes its files); entries go with their last user, since the service runs for months.
    """

    def __init__(self, leases: Leases | None = None) -> None:
        self.leases = leases
        self._locks: dict[str, tuple[threading.Lock, int]] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                if self.leases is None:
                    yield
                else:
                    with self.leases.exclusive(f"content:{key}"):
                        yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
