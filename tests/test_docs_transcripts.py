"""The commands the README and docs/ show still print what they show.

``tools/docs_transcripts.py`` reruns every transcript marked ``check`` (the
fast ones) and compares the stable parts of the output; a changed output
fails here until the docs are regenerated with the same tool.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("docs_transcripts",
                                               ROOT / "tools" / "docs_transcripts.py")
dt = importlib.util.module_from_spec(_spec)
sys.modules["docs_transcripts"] = dt         # (dataclasses look their module up)
_spec.loader.exec_module(dt)

DOC = """intro
<!-- transcript: check ignore="limit [0-9.]+ GiB" -->
```
$ echo one \\
    two
one two
$ printf 'a\\nb\\n'
stale
```
```
$ not marked
```
"""


def test_transcripts_are_parsed_with_continuations_and_outputs():
    (t,) = dt.transcripts("x.md", DOC)
    assert (t.mode, t.ignore, t.start, t.stop) == ("check", "limit [0-9.]+ GiB", 3, 8)
    assert [c.text for c in t.commands] == ["echo one \\\n    two", "printf 'a\\nb\\n'"]
    assert [c.output for c in t.commands] == [["one two"], ["stale"]]


def test_only_varying_parts_are_masked():
    got = dt.stable(["ran 200 steps in 0.027 s (7434 steps/s), 1.2e+09 ev/s, 38 ms",
                     "[  12.3 s] yosys", "limit 11.8 GiB", "98.22% (442/450), 9890 words"],
                    "limit [0-9.]+ GiB")
    assert got == ["ran 200 steps in <~> (<~>), <~>, <~>", "[  <~>] yosys", "<~>",
                   "98.22% (442/450), 9890 words"]


def test_a_drifted_output_is_found_and_rewritten(tmp_path, monkeypatch):
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    monkeypatch.setattr(dt, "ROOT", tmp_path)
    drift = dt.process("doc.md", check=True, only=None, timeout=60)
    assert len(drift) == 1 and "-stale" in drift[0] and "+a" in drift[0]
    assert doc.read_text() == DOC                       # --check writes nothing
    dt.process("doc.md", check=False, only=None, timeout=60)
    assert doc.read_text() == DOC.replace("stale", "a\nb")
    assert dt.process("doc.md", check=True, only=None, timeout=60) == []


@pytest.mark.parametrize("path", [p for p in dt.DOCS
                                  if any(t.mode == "check" for t in dt.transcripts(
                                      p, (ROOT / p).read_text()))])
def test_documented_outputs_match_a_rerun(path):
    drift = dt.process(path, check=True, only="check", timeout=600)
    assert not drift, ("documented output drifted; rerun python tools/docs_transcripts.py\n"
                       + "\n".join(drift))
