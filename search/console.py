"""The terminal of a long command: its own lines, and one progress line that is redrawn in place on a terminal.

`capture(log)` sends everything else the process prints, at the file-descriptor level (Ray Tune's status and result
tables, the workers' lines Ray forwards, Ray's, MLflow's and Optuna's info lines), to a log file instead; warnings
and errors still reach the terminal, once each, and `verbose` brings all of it back. Off a terminal (a pipe, `nohup`,
CI) a progress line is printed as a line of its own only when its caller marks an event, never as
carriage-return redraws. Written here rather than with tqdm, which redraws with carriage returns on any stream.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import selectors
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

LOG_FILE = "search.log"  # in the search's folder: everything Ray and the libraries printed
QUIET_INTERVAL_S = 60.0  # off a terminal, progress that is not an event is printed at most this often

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ALERT = re.compile(r"\b(WARNING|ERROR|CRITICAL|FATAL)\b|\b\w*(Warning|Error|Exception):|\b(warning|error): |^\[[WEC] |"
                   r"\[\S+ \S+ [WEF] \d+ \d+\]")
# Ray's advice to its own developers, about choices kdtune makes on purpose (a report and checkpoint every epoch):
# kept in the log, not repeated on the terminal.
NOT_FOR_THE_TERMINAL = ("may be a performance bottleneck",)
TABLE = re.compile(r"^(\s*[\u2500-\u257f]|Trial status:)")  # Tune's tables, whose rows say ERROR of a failed trial
WORKER_PREFIX = re.compile(r"^\((?:[^()]|\([^()]*\))*pid=\d+[^)]*\)\s*")
REPEATED = re.compile(r"\s*\[repeated \d+x across cluster\].*$")


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def alert_key(line: str) -> str | None:
    """What makes a captured line a warning or error the terminal should see, with what varies between repeats
    (worker prefixes, timestamps, numbers) taken out; None for any other line."""
    text = REPEATED.sub("", ANSI.sub("", line)).strip()
    if not ALERT.search(text) or TABLE.match(text) or any(quiet in text for quiet in NOT_FOR_THE_TERMINAL):
        return None
    return re.sub(r"\d+", "#", WORKER_PREFIX.sub("", text))


class Console:
    """Where a command's own lines go: `out` and `err` (the terminal; by default this process's stdout and stderr as
    they are when written to), and a log file when one is kept."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, log: TextIO | None = None,
                 verbose: bool = False) -> None:
        self._out, self._err, self.log, self.verbose = out, err, log, verbose
        self._status = ""
        self._printed_at, self._printed, self._event_last = -float("inf"), "", False
        self._alerts: set[str] = set()
        self._lock = threading.RLock()

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout or open(os.devnull, "w")

    @property
    def err(self) -> TextIO:
        return self._err or sys.stderr or open(os.devnull, "w")

    @property
    def live(self) -> bool:
        """Redraw in place: on a terminal, where nothing else writes between the redraws."""
        return is_terminal(self.out) and not self.verbose

    def say(self, text: str = "", warning: bool = False) -> None:
        """Lines of the command's own: on the terminal (stderr for a warning) and in the log."""
        with self._lock:
            self._clear()
            stream = self.err if warning else self.out
            stream.write(text + "\n")
            stream.flush()
            self._log(text)
            self._draw()

    def status(self, line: str, event: bool = False) -> None:
        """The stage's progress: redrawn in place on a terminal; elsewhere a line of its own when `event` (a trial
        ended) or when the last one is `QUIET_INTERVAL_S` old. The log keeps the lines printed."""
        with self._lock:
            now = time.monotonic()
            if self.live:
                self._status = line
                self._draw()
                if event:
                    self._log(line)
                return
            if (event or now - self._printed_at >= QUIET_INTERVAL_S) and line != self._printed:
                self._printed_at, self._printed, self._event_last = now, line, event
                self.out.write(line + "\n")
                self.out.flush()
                self._log(line)

    def end_status(self, line: str | None = None) -> None:
        """The stage is over: its last progress line (`line`, else the one shown) stays, and the next starts below;
        off a terminal, `line` is printed unless the last line printed was an event's (which says as much)."""
        with self._lock:
            if self.live:
                self._status = self._status if line is None else line
                if self._status:
                    self._draw()
                    self.out.write("\n")
                    self.out.flush()
                    self._log(self._status)
            elif line is not None and not self._event_last:
                self.status(line, event=True)
            self._status, self._printed_at, self._printed, self._event_last = "", -float("inf"), "", False

    def captured(self, line: str, from_err: bool) -> None:
        """A line someone else printed: into the log; onto the terminal when verbose, or when it is a warning or an
        error not shown before."""
        with self._lock:
            self._log(ANSI.sub("", line))
            if self.verbose:
                stream = self.err if from_err else self.out
            else:
                key = alert_key(line)
                if key is None or key in self._alerts:
                    return
                self._alerts.add(key)
                stream, line = self.err, REPEATED.sub("", ANSI.sub("", line)).strip()
            self._clear()
            stream.write(line + "\n")
            stream.flush()
            self._draw()

    def _log(self, text: str) -> None:
        if self.log is not None:
            self.log.write(text + "\n")
            self.log.flush()

    def _width(self) -> int:
        try:
            columns = os.get_terminal_size(self.out.fileno()).columns
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            columns = 0
        return columns or shutil.get_terminal_size().columns  # a terminal of unknown size says 0: $COLUMNS, else 80

    def _clear(self) -> None:
        if self.live and self._status:
            self.out.write("\r\x1b[K")

    def _draw(self) -> None:
        if self.live and self._status:
            width = max(self._width() - 1, 20)
            shown = self._status if len(self._status) <= width else self._status[:width - 1] + "…"
            self.out.write("\r" + shown + "\x1b[K")
            self.out.flush()


_DEFAULT = Console()
_current: Console | None = None


def current() -> Console:
    """The console in use: the capturing one during a search, else the one on this process's stdout and stderr."""
    return _current or _DEFAULT


def say(text: str = "", warning: bool = False) -> None:
    current().say(text, warning)


def flush_quietly(*streams: TextIO | None) -> None:
    for stream in streams:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()


class Capture:
    """This process's stdout and stderr, file descriptors 1 and 2, drawn through pipes into `console` (and so into
    its log); the terminal keeps copies of the originals. `stop()` puts them back once nothing more is expected."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._saved: dict[int, int] = {}
        self._streams = (sys.stdout, sys.stderr)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        flush_quietly(*self._streams)
        readers: dict[int, bool] = {}
        try:
            for fd in (1, 2):
                self._saved[fd] = os.dup(fd)
                read, write = os.pipe()
                readers[read] = fd == 2
                os.dup2(write, fd)
                os.close(write)
        except OSError:  # out of descriptors: leave 1 and 2 as they were
            self._restore()
            for read in readers:
                os.close(read)
            raise
        sys.stdout = open(1, "w", buffering=1, closefd=False, encoding="utf-8", errors="backslashreplace")
        sys.stderr = open(2, "w", buffering=1, closefd=False, encoding="utf-8", errors="backslashreplace")
        self._thread = threading.Thread(target=self._pump, args=(readers,), name="kdtune-console", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Restore descriptors 1 and 2 and wait until what was written to them is in the log (again: nothing)."""
        flush_quietly(sys.stdout, sys.stderr, *self._streams)  # what the original objects still buffer goes in too
        self._restore()
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _restore(self) -> None:
        sys.stdout, sys.stderr = self._streams
        saved, self._saved = self._saved, {}
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)

    def _pump(self, readers: dict[int, bool]) -> None:
        """Read both pipes line by line until they are closed, or drained once `stop` asked (a process Ray started
        may still hold a copy of a pipe, so end of file cannot be waited for)."""
        selector = selectors.DefaultSelector()
        pending: dict[int, bytes] = {}
        for fd in readers:
            selector.register(fd, selectors.EVENT_READ)
            pending[fd] = b""
        while readers:
            ready = selector.select(timeout=0.1)
            if not ready and self._stopping.is_set():
                break
            for key, _ in ready:
                fd = key.fd
                chunk = os.read(fd, 65536)
                if not chunk:
                    selector.unregister(fd)
                    self._emit(pending.pop(fd), readers.pop(fd))
                    os.close(fd)
                    continue
                *lines, pending[fd] = (pending[fd] + chunk).split(b"\n")
                for line in lines:
                    self._emit(line, readers[fd])
        for fd, rest in pending.items():
            self._emit(rest, readers[fd])
            selector.unregister(fd)
            os.close(fd)
        selector.close()

    def _emit(self, line: bytes, from_err: bool) -> None:
        text = line.decode("utf-8", errors="backslashreplace").rstrip("\r")
        if not text.strip():
            return
        try:
            self.console.captured(text.rsplit("\r", 1)[-1], from_err)
        except Exception:  # noqa: BLE001 - a full disk, a closed terminal: the pump must go on draining the pipes,
            pass  # or every later write of the search (Ray's, the workers') blocks once a pipe is full


def terminal_copy(stream: TextIO | None, fd: int) -> TextIO:
    """A stream onto where `stream` writes now, that survives the capture of `fd`: a copy of the descriptor when
    `stream` is this process's own, else `stream` itself (a test's stand-in); nowhere when there is none."""
    if stream is None:  # started with the descriptor closed (`>&-`)
        return open(os.devnull, "w")
    try:
        if stream.fileno() == fd:
            return open(os.dup(fd), "w", buffering=1, encoding=getattr(stream, "encoding", None) or "utf-8",
                        errors="backslashreplace")
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    return stream


def open_descriptors() -> None:
    """Descriptors 1 and 2 open (onto /dev/null where the process started with them closed), so that the capture's
    pipes do not take their numbers."""
    for fd in (1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


@contextlib.contextmanager
def capture(log_path: Path, verbose: bool = False) -> Iterator[Capture]:
    """Within the block, this process's output (and that of anything printing through it) goes to `log_path`
    (appended), the command's own lines (`say`, `current().status`) to the terminal and the log."""
    global _current
    open_descriptors()
    out, err = terminal_copy(sys.stdout, 1), terminal_copy(sys.stderr, 2)
    log = open(log_path, "a", encoding="utf-8", errors="backslashreplace")
    console = Console(out, err, log, verbose)
    previous, _current = _current, console
    captured = Capture(console)
    try:
        captured.start()
        yield captured
    finally:
        try:
            with contextlib.suppress(OSError, ValueError):
                console.end_status()  # a stage an interrupt cut short: its line stays, what follows starts below
            captured.stop()
        finally:
            _current = previous
            log.close()
            for copy, original in ((out, sys.stdout), (err, sys.stderr)):
                if copy is not original:
                    with contextlib.suppress(OSError, ValueError):  # a reader that went away (`| head`)
                        copy.close()
