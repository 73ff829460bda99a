"""examples/stdp_reward.py learns: R-STDP with a host-given reward per core
goes from chance to (nearly) always right on a shortened run."""

import importlib.util
import sys
from pathlib import Path

PATH = Path(__file__).resolve().parents[1] / "examples" / "stdp_reward.py"


def test_reward_rises(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("stdp_reward", PATH)
    ex = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = ex
    spec.loader.exec_module(ex)
    png = tmp_path / "r.png"
    correct, weights = ex.main(["--trials", "400", "--batch", "8", "--block", "40",
                                "--png", str(png)])
    assert f"saved {png}" in capsys.readouterr().out and png.exists()
    acc = correct.reshape(-1, 40, 8).mean(axis=(1, 2))
    assert acc[0] <= 0.7 and acc[-1] >= 0.95
    # each action neuron ends with its own stimuli's weights far above the others'
    w = weights[-1]
    g = ex.GROUP
    assert w[0, :2 * g].mean() > w[0, 2 * g:].mean() + 30
    assert w[1, 2 * g:].mean() > w[1, :2 * g].mean() + 30
