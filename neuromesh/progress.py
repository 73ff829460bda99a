"""Stages and elapsed time of the long commands (board builds, Verilator
compiles, Verilog generation), on stderr.

A :class:`Progress` walks through named stages. On a terminal it keeps one
line up to date: a bar over the stages (their number is known in advance),
the current stage, its elapsed seconds and the latest detail a tool printed.
Anywhere else (a pipe, a log file, CI) it prints one line per stage as it
starts, with the seconds since the command began, and a closing line with
the time of every stage::

    [0.0 s] build 1/6: fit check
    [0.4 s] build 2/6: elaborate
    [1.8 s] build 3/6: synthesize (yosys)
    ...
    [203.4 s] build: done in 203.4 s (fit check 0.4 s, elaborate 1.4 s, ...)

``quiet`` prints nothing; ``verbose`` prints the stage lines and streams
the tools' own output (:meth:`Progress.tool_line`) instead of a redrawn
line. :func:`run_tool` runs a tool with its output piped: every line goes
to a log file, advances the stages when it matches a trigger, and is echoed
when verbose.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["Progress", "run_tool", "follow_file", "ToolFailed", "add_progress_arguments"]

#: Width of the bar on a terminal, in characters.
BAR = 20


class ToolFailed(RuntimeError):
    """A tool run by :func:`run_tool` exited with an error; the message names
    the first error line and the log file."""

    def __init__(self, message: str, returncode: int, log: Path | None):
        super().__init__(message)
        self.returncode = returncode
        self.log = log


class Progress:
    """Stage lines (or a redrawn line on a terminal) for one long command.

    Parameters
    ----------
    title:
        What is running (``"build"``, ``"rtl"``), the prefix of every line.
    stages:
        The stage names in order, when they are known in advance (they give
        the ``i/n`` count and the bar). :meth:`stage` may also name a stage
        that is not listed.
    quiet:
        Print nothing.
    verbose:
        Stream the tools' output (:meth:`tool_line`); stage lines are
        printed as on a non-terminal.
    stream:
        Where to write (default ``sys.stderr``).
    tty:
        Redraw one line (default: whether ``stream`` is a terminal).
    refresh:
        On a terminal, redraw at least this often (seconds) so the elapsed
        time moves while a tool is silent; 0: only on events.
    clock:
        Seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, title: str, stages: Sequence[str] = (), *, quiet: bool = False,
                 verbose: bool = False, stream=None, tty: bool | None = None,
                 refresh: float = 0.5, clock=time.monotonic):
        self.title = title
        self.stages = list(stages)
        self.quiet = quiet
        self.verbose = verbose and not quiet
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty and not self.verbose and not quiet
        self.clock = clock
        self.t0 = clock()
        self.current: str | None = None
        self.started: float | None = None
        self.times: dict[str, float] = {}    #: seconds per finished stage, in order
        self._detail = ""
        self._last_draw = None
        self._width = 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker = None
        self._refresh = refresh
        self.finished = False

    # --- stages ---------------------------------------------------------------

    def index(self, name: str) -> int | None:
        """Position of ``name`` in :attr:`stages` (``None`` if not listed)."""
        return self.stages.index(name) if name in self.stages else None

    def stage(self, name: str, note: str = ""):
        """End the current stage and start ``name`` (``note``: said after its
        name, e.g. ``cached``)."""
        with self._lock:
            now = self.clock()
            self._close_stage(now)
            self.current, self.started, self._detail = name, now, note
            if self.quiet:
                return
            if self.tty:
                self._draw(force=True)
                self._start_ticker()
            else:
                self._write(f"[{now - self.t0:.1f} s] {self.title}{self._count(name)}: "
                            f"{name}{f' ({note})' if note else ''}\n")

    def advance_to(self, name: str):
        """Start ``name`` if it comes after the current stage (tool output
        may repeat a trigger; stages never go back)."""
        i, cur = self.index(name), self.index(self.current) if self.current else -1
        if name != self.current and (i is None or cur is None or i > cur):
            self.stage(name)

    def detail(self, text: str):
        """The latest thing the current stage reported (shown on a terminal)."""
        with self._lock:
            self._detail = " ".join(str(text).split())
            if self.tty and not self.quiet:
                self._draw()

    def tool_line(self, line: str):
        """One line of a tool's own output: echoed when verbose."""
        if self.verbose:
            with self._lock:
                self._write(line if line.endswith("\n") else line + "\n")

    def message(self, text: str):
        """A line of its own (a warning, a path), between the stage lines."""
        if self.quiet:
            return
        with self._lock:
            if self.tty:
                self._clear()
            self._write(text.rstrip("\n") + "\n")
            if self.tty and self.current and not self.finished:
                self._draw(force=True)

    def finish(self, ok: bool = True, note: str = ""):
        """End the last stage and print the closing line (``done`` or
        ``failed``, with the time of every stage; nothing if no stage
        started, e.g. when the input was refused first)."""
        with self._lock:
            if self.finished:
                return
            now = self.clock()
            started = self.current is not None or bool(self.times)
            self._close_stage(now)
            self.finished = True
            self._stop.set()
            if self.quiet or not started:
                return
            # the time of each stage, when there are few enough to read
            parts = ", ".join(f"{k} {v:.1f} s" for k, v in self.times.items()
                              ) if len(self.times) <= 6 else ""
            text = (f"{self.title}: {'done' if ok else 'failed'} in {now - self.t0:.1f} s"
                    + (f" ({parts})" if parts else "") + (f"; {note}" if note else ""))
            if self.tty:
                self._clear()
                self._write(text + "\n")
            else:
                self._write(f"[{now - self.t0:.1f} s] {text}\n")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.finish(ok=exc_type is None)
        if self._ticker is not None:
            self._ticker.join(timeout=1)
        return False

    # --- rendering ------------------------------------------------------------

    def _count(self, name: str) -> str:
        i = self.index(name)
        return f" {i + 1}/{len(self.stages)}" if i is not None else ""

    def _close_stage(self, now: float):
        if self.current is not None and self.started is not None:
            self.times[self.current] = self.times.get(self.current, 0.0) + now - self.started
        self.current = self.started = None

    def line(self) -> str:
        """The terminal line for the current state (without ``\\r``)."""
        now = self.clock()
        i = self.index(self.current) if self.current else None
        if i is not None:
            filled = round(BAR * i / max(len(self.stages), 1))
            bar = f"[{'#' * filled}{'.' * (BAR - filled)}] {i + 1}/{len(self.stages)} "
        else:
            bar = ""
        stage_s = now - self.started if self.started is not None else 0.0
        text = (f"{self.title} {bar}{self.current or ''} {stage_s:.0f} s "
                f"(total {now - self.t0:.0f} s)")
        if self._detail:
            text += f"  {self._detail}"
        return text[:_columns() - 1]

    def _draw(self, force: bool = False):
        now = self.clock()
        if not force and self._last_draw is not None and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        text = self.line()
        pad = max(self._width - len(text), 0)
        self._write("\r" + text + " " * pad)
        self._width = len(text)

    def _clear(self):
        if self._width:
            self._write("\r" + " " * self._width + "\r")
            self._width = 0

    def _write(self, text: str):
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def _start_ticker(self):
        if self._ticker is not None or self._refresh <= 0:
            return

        def tick():
            while not self._stop.wait(self._refresh):
                with self._lock:
                    if not self.finished and self.current:
                        self._draw(force=True)

        self._ticker = threading.Thread(target=tick, name="neuromesh-progress", daemon=True)
        self._ticker.start()


def _columns() -> int:
    import shutil
    return max(shutil.get_terminal_size((100, 24)).columns, 40)


def run_tool(progress: Progress, cmd: Sequence[str] | str, *, log: Path | None = None,
             triggers: Iterable[tuple[str, str]] = (), detail: str | None = None,
             cwd=None, env=None, shell: bool = False, what: str | None = None) -> int:
    """Run ``cmd`` with stdout and stderr piped together; every line is
    appended to ``log``, echoed when ``progress.verbose``, and checked
    against ``triggers`` (``(regex, stage)``: a matching line starts that
    stage, if it comes later) and ``detail`` (a regex whose match, or its
    first group, becomes the terminal line's detail). Raises
    :class:`ToolFailed` naming the first error line and ``log`` when the
    tool fails; returns 0 otherwise."""
    compiled = [(re.compile(rx), stage) for rx, stage in triggers]
    detail_rx = re.compile(detail) if detail else None
    first_error = None
    tail: list[str] = []
    logf = open(log, "a", encoding="utf-8", errors="replace") if log else None
    try:
        with subprocess.Popen(cmd, cwd=cwd, env=env, shell=shell, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace",
                              bufsize=1) as proc:
            try:
                for line in proc.stdout:
                    if logf:
                        logf.write(line)
                    progress.tool_line(line)
                    text = line.rstrip("\n")
                    for rx, stage in compiled:
                        if rx.search(text):
                            progress.advance_to(stage)
                            break
                    if detail_rx is not None:
                        m = detail_rx.search(text)
                        if m:
                            progress.detail(m.group(1) if m.groups() else m.group(0))
                    if first_error is None and _is_error(text):
                        first_error = text.strip()
                    tail = (tail + [text])[-15:]
                returncode = proc.wait()
            except BaseException:
                proc.kill()
                raise
    finally:
        if logf:
            logf.close()
    if returncode != 0:
        name = what or (cmd if isinstance(cmd, str) else Path(cmd[0]).name)
        why = first_error or next((t for t in reversed(tail) if t.strip()), "no output")
        where = f" (full log: {log})" if log else ""
        raise ToolFailed(f"{name} failed (exit {returncode}): {why}{where}", returncode, log)
    return 0


class follow_file:
    """Context manager: while the body runs, follow the lines a tool appends
    to ``path`` (a log file it writes itself, e.g. cocotb's build.log):
    each complete line is echoed when ``progress.verbose`` and, if it
    matches ``detail`` (a regex, or a function of the line returning the
    text or ``None``), becomes the terminal line's detail."""

    def __init__(self, progress: Progress, path, *, detail=None, interval: float = 0.2):
        self.progress, self.path, self.interval = progress, Path(path), interval
        if isinstance(detail, str):
            rx = re.compile(detail)

            def detail(line):
                m = rx.search(line)
                return (m.group(1) if m.groups() else m.group(0)) if m else None
        self.detail = detail
        self._stop = threading.Event()
        self._thread = None
        self._pos = 0
        self._partial = ""

    def poll(self):
        """Read what was appended since the last call."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                f.seek(self._pos)
                chunk = f.read()
                self._pos = f.tell()
        except OSError:
            return
        lines = (self._partial + chunk).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self.progress.tool_line(line + "\n")
            text = self.detail(line) if self.detail is not None else None
            if text:
                self.progress.detail(text)

    def __enter__(self):
        if self.progress.quiet or not (self.progress.verbose or self.progress.tty):
            return self          # nobody would see it

        def run():
            while not self._stop.wait(self.interval):
                self.poll()

        self._thread = threading.Thread(target=run, name="neuromesh-follow", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.poll()
            if self._partial:
                self.progress.tool_line(self._partial + "\n")
                self._partial = ""
        return False


def _is_error(line: str) -> bool:
    return bool(re.match(r"\s*(ERROR|Error|%Error|fatal error)\b", line)
                or " error: " in line or line.startswith("error:"))


def add_progress_arguments(parser):
    """``--quiet`` and ``--verbose``, the same on every long command (build,
    rtl, cosim, cosim-campaign)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true",
                       help="print no progress (stages, elapsed time, progress bars) on stderr")
    group.add_argument("--verbose", action="store_true",
                       help="also stream the tools' own output (yosys, nextpnr, Verilator) "
                            "on stderr")
