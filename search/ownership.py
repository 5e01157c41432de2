"""One driver per search folder, and shared stores created by one process at a time.

An OS lock (`flock`) on a file in the search's folder is held for as long as the driver runs and is
released by the kernel when the process dies, however it dies; the file names its holder (PID, host,
start) for the line a second driver prints. The `filelock` package is not used because it truncates
the lock file on every attempt, which would erase the holder's name. `flock` locks an open file
description (closing another descriptor of the same file keeps it), and Linux maps it onto NFS locks.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from distill.errors import UserError
from search import console

LOCK_FILE = "kdtune.lock"


class Lock:
    """An exclusive `flock` on `path`, which records who holds it."""

    def __init__(self, path: Path) -> None:
        self.path, self.fd = path, None

    def acquire(self, wait: bool = False) -> bool:
        """Take the lock (waiting for it when `wait`); False when another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # the kernel drops the flock with the last descriptor of this open file
            self.fd = None

    def holder(self) -> str:
        """'PID 4242 on node-3 since 2026-12-05 10:00:00', from what the holder wrote (best effort)."""
        try:
            who = json.loads(self.path.read_text())
            return f"PID {who['pid']} on {who['host']} since {who['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"


class SearchFolder:
    """The search folder `storage/name`, owned by this driver until `release` (or the process's end)."""

    def __init__(self, folder: Path, lock: Lock, created: list[Path]) -> None:
        self.folder, self.lock, self.created = folder, lock, created

    def release(self, keep_if: str | None = None) -> None:
        """Give the folder up; a folder this driver created is removed again when `keep_if` (a file that marks a
        started search) never appeared in it, with the parents it created while they are empty (another search
        may have started in them meanwhile), so a search that failed before it began leaves nothing behind."""
        self.lock.release()
        if not self.created or (keep_if is not None and (self.folder / keep_if).exists()):
            return
        shutil.rmtree(self.folder, ignore_errors=True)
        for parent in self.created[1:]:
            with contextlib.suppress(OSError):
                parent.rmdir()


def running(folder: Path) -> str | None:
    """Who runs the search in `folder` now, or None when nobody does."""
    lock = Lock(folder / LOCK_FILE)
    if not (folder / LOCK_FILE).is_file():
        return None
    if lock.acquire():
        lock.release()
        return None
    return lock.holder()


def running_error(folder: Path, holder: str, command: str) -> UserError:
    return UserError(f"the search in {folder} is running ({holder}): wait for it to end, or stop it (Ctrl-C) and "
                     f"continue it with `{command}`")


def refuse_if_running(folder: Path, command: str) -> None:
    """A UserError when a driver holds `folder`: a second one would share its trials, study and runs."""
    holder = running(folder)
    if holder:
        raise running_error(folder, holder, command)


def claim(folder: Path, new: bool, command: str) -> SearchFolder:
    """Own `folder` for this driver: a new search creates it (atomically, so two drivers never both do), a resumed
    one locks the one it continues. A running owner, or a folder that appeared meanwhile, is a UserError."""
    created: list[Path] = []  # the folders this claim made, the search's own first
    if new:
        missing = [parent for parent in folder.parents if not parent.exists()]  # nearest first
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir()
        except FileExistsError:
            refuse_if_running(folder, command)
            raise UserError(f"{folder} exists: pass --resume to continue that search, or another --name") from None
        created = [folder, *missing]
    lock = Lock(folder / LOCK_FILE)
    if not lock.acquire():
        holder = lock.holder()
        SearchFolder(folder, lock, created).release()
        raise running_error(folder, holder, command)
    return SearchFolder(folder, lock, created)


@contextlib.contextmanager
def creating(store: Path, waiting: str = "") -> Iterator[None]:
    """Held while a shared store (a SQLite file, a cached teacher) is created or migrated: one process at a time,
    the others wait (saying `waiting` and who they wait for, when given), so two searches started at once never
    both create it."""
    store.parent.mkdir(parents=True, exist_ok=True)
    lock = Lock(store.with_name(store.name + ".lock"))
    if not lock.acquire():
        if waiting:
            console.say(f"{waiting}: waiting for {lock.holder()}")
        lock.acquire(wait=True)
    try:
        yield
    finally:
        lock.release()
