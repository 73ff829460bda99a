"""examples/stdp_pattern.py learns: a shortened run picks out the pattern."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

PATH = Path(__file__).resolve().parents[1] / "examples" / "stdp_pattern.py"


def load_example():
    spec = importlib.util.spec_from_file_location("stdp_pattern", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_stdp_selects_the_pattern(tmp_path, capsys):
    ex = load_example()
    png = tmp_path / "stdp.png"
    res, rows = ex.main(["--steps", "20000", "--blocks", "10", "--png", str(png)])
    out = capsys.readouterr().out
    assert f"saved {png}" in out and png.stat().st_size > 10_000
    first, last = rows[0], rows[-1]
    hit, false = last[2], last[3]
    assert hit >= 0.9 and false <= 2.0            # answers the pattern, silent otherwise
    w = res["weights"][-1, 0]
    member = res["member"]
    assert w[~member].mean() < 10 < 30 < w[member].mean()
    # the strongest synapses all belong to the pattern, and they are its
    # early inputs (first spike in the first half of the pattern)
    top = np.argsort(w)[-30:]
    assert member[top].all()
    first_spike = res["pattern"].argmax(0)
    assert (first_spike[top] < ex.Task().pattern_len // 2).all()
    assert first[6] > 2 * last[6]                 # noise-only weights fell
