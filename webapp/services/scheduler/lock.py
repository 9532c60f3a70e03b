"""The lock that makes exactly one process fire jobs in the embedded mode.

An exclusive, non-blocking flock on a file beside the database. The kernel releases it when
the holder dies, however it dies, so a surviving process (another gunicorn worker, the next
start) takes over on its next try. It works for every process on one host, which is the
embedded mode's scope; the Celery mode uses a Redis lease instead.
"""

import fcntl
import os
from pathlib import Path


class FileLock:
    """A non-blocking exclusive lock on a file, held until release or process exit."""

    def __init__(self, path: str):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Return whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> bool:
        """Try to take the lock without waiting; return whether it is now held."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        """Give the lock up."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
