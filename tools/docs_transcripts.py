"""Rerun the commands the README and docs/ show, and keep their outputs true.

A *transcript* is a fenced block of ``$ command`` lines, each followed by the
output it printed. A transcript is rerun only when the line before its fence
marks it::

    <!-- transcript: check -->        fast: rerun by the tests in CI
    <!-- transcript: refresh -->      slow (bitstreams, training): rerun only here

optionally with ``ignore="REGEX"`` for more parts that change from run to run
(``<!-- transcript: check ignore="limit [\\d.]+ GiB" -->``). Unmarked blocks
are never run (commands for hardware, a cluster, illustrations).

The commands of one file run in order, in one scratch folder that holds links
to the repository's top-level files and folders, so a file written by one
command (``neuromesh example -o ex.nmi``) is read by the next, and nothing is
written into the checkout. A command runs under ``bash`` with the running
Python's ``bin`` folder first on ``PATH`` (``neuromesh`` and ``python`` are
the ones of this install), stdout and stderr together as a terminal would show
them; a continued command (lines ending in ``\\``) is one command.

    python tools/docs_transcripts.py            # rewrite the outputs of every marked block
    python tools/docs_transcripts.py --check    # compare their stable parts only; exit 1 on drift
    python tools/docs_transcripts.py --only check README.md   # the fast ones only

The *stable parts* are the output with the things that differ between two
honest runs masked: durations (``1.7 s``, ``[  12.3 s]``, ``38 ms``), rates
(``9721 samples/s``, ``7434 steps/s``) and the block's ``ignore`` patterns.
``tests/test_docs_transcripts.py`` runs ``--check`` on the ``check`` blocks.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]

_MARK = re.compile(r'^<!--\s*transcript:\s*(check|refresh)(?:\s+ignore="(.*?)")?\s*-->\s*$')
_FENCE = re.compile(r"^(```+|~~~+)")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: Output that differs between two honest runs of the same command.
VOLATILE = [
    r"\d+(?:\.\d+)?(?:e[+-]?\d+)?\s?(?:[A-Za-zµ.]+ ?)?/s\b",           # rates: 9721 samples/s
    r"\d+(?:\.\d+)?\s?(?:s|ms|us|µs|ns|min|h)\b",                    # durations: 1.7 s, 38 ms
    r"\(\s*\d+(?:\.\d+)?x\)",                                          # speed ratios: (1.02x)
]


@dataclass
class Command:
    """One ``$`` command of a transcript and the output the doc shows."""

    lines: list[str]            # the command as written (continuations included)
    output: list[str]           # the documented output

    @property
    def text(self) -> str:
        """The shell command (the ``$ `` prompt removed, continuations kept)."""
        return "\n".join([self.lines[0][2:], *self.lines[1:]])


@dataclass
class Transcript:
    """A marked fenced block: where it is and what it holds."""

    path: str
    mode: str                   # "check" or "refresh"
    ignore: str | None
    start: int                  # index of the first line inside the fence
    stop: int                   # index of the closing fence
    lead: list[str] = field(default_factory=list)   # lines before the first command
    commands: list[Command] = field(default_factory=list)

    @property
    def line(self) -> int:
        return self.start + 1


def transcripts(path: str, text: str) -> list[Transcript]:
    """The marked transcripts of one markdown file."""
    lines = text.split("\n")
    found, i = [], 0
    while i < len(lines):
        mark = _MARK.match(lines[i])
        if not mark or i + 1 >= len(lines) or not _FENCE.match(lines[i + 1]):
            i += 1
            continue
        fence = _FENCE.match(lines[i + 1]).group(1)
        end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith(fence)), None)
        if end is None:
            raise SystemExit(f"{path}:{i + 2}: a transcript's fence is never closed")
        t = Transcript(path, mark.group(1), mark.group(2), i + 2, end)
        body, k = lines[i + 2:end], 0
        while k < len(body):
            if not body[k].startswith("$ "):
                (t.commands[-1].output if t.commands else t.lead).append(body[k])
                k += 1
                continue
            cmd = [body[k]]
            while cmd[-1].endswith("\\") and k + 1 < len(body):
                k += 1
                cmd.append(body[k])
            t.commands.append(Command(cmd, []))
            k += 1
        if not t.commands:
            raise SystemExit(f"{path}:{t.line}: a marked transcript has no '$ ' command")
        found.append(t)
        i = end + 1
    return found


def _scratch() -> tempfile.TemporaryDirectory:
    """A folder with links to the repository's top-level entries."""
    tmp = tempfile.TemporaryDirectory(prefix="neuromesh-docs-")
    for entry in ROOT.iterdir():
        if entry.name in (".git", ".venv") or entry.name.startswith(".pytest"):
            continue
        (Path(tmp.name) / entry.name).symlink_to(entry)
    return tmp


def run(command: Command, cwd: str, timeout: float) -> list[str]:
    """Run one command as a user's shell would and return its output lines."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env["COLUMNS"] = "100"
    env.pop("NEUROMESH_TRACEBACK", None)
    try:
        done = subprocess.run(["bash", "-c", command.text], cwd=cwd, env=env, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace")
        out = done.stdout
    except subprocess.TimeoutExpired as e:
        raise SystemExit(f"{command.text!r} took longer than {timeout:g} s") from e
    out = _ANSI.sub("", out).replace(cwd + "/", "").replace(cwd, ".")
    lines = [line.rsplit("\r", 1)[-1].rstrip() for line in out.rstrip("\n").split("\n")]
    return [] if lines == [""] else lines


def stable(lines: list[str], ignore: str | None) -> list[str]:
    """``lines`` with the parts that vary between runs masked."""
    patterns = VOLATILE + ([ignore] if ignore else [])
    out = []
    for line in lines:
        for p in patterns:
            line = re.sub(p, "<~>", line)
        out.append(line.rstrip())
    return out


def process(path: str, *, check: bool, only: str | None, timeout: float) -> list[str]:
    """Rerun the marked transcripts of ``path``; rewrite it (or, with
    ``check``, compare). Returns the drift found, as diff text blocks."""
    text = (ROOT / path).read_text()
    # (a refresh may read what a check transcript before it wrote: all run)
    ts = [t for t in transcripts(path, text) if only != "check" or t.mode == "check"]
    if not ts:
        return []
    lines = text.split("\n")
    drift = []
    with _scratch() as cwd:
        for t in ts:
            body = list(t.lead)
            for c in t.commands:
                got = run(c, cwd, timeout)
                want_s, got_s = stable(c.output, t.ignore), stable(got, t.ignore)
                if want_s != got_s:
                    diff = "\n".join(difflib.unified_diff(
                        want_s, got_s, "documented", "now", lineterm="", n=1))
                    drift.append(f"{path}:{t.line}: $ {c.text}\n{diff}")
                body += c.lines + got
            t.new_body = body
    if not check:
        for t in reversed(ts):
            lines[t.start:t.stop] = t.new_body
        new = "\n".join(lines)
        if new != text:
            tmp = ROOT / (path + ".tmp")
            tmp.write_text(new)
            os.replace(tmp, ROOT / path)
    return drift


def main(argv=None) -> int:
    """Command line: rewrite (default) or ``--check`` the marked transcripts."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("files", nargs="*", help="markdown files (default: README.md, docs/*.md)")
    ap.add_argument("--check", action="store_true",
                    help="compare the stable parts only; exit 1 when a documented output drifted")
    ap.add_argument("--only", choices=["check"],
                    help="only the fast transcripts (marked check)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per command")
    args = ap.parse_args(argv)
    drift = []
    for path in args.files or DOCS:
        rel = str(Path(path).resolve().relative_to(ROOT))
        drift += process(rel, check=args.check, only=args.only, timeout=args.timeout)
        print(f"{rel}: {'checked' if args.check else 'rerun'}", file=sys.stderr)
    for d in drift:
        print(d)
    if args.check and drift:
        print(f"{len(drift)} documented outputs drifted; rerun python tools/docs_transcripts.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
