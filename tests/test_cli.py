"""The ``neuromesh`` command line, run in-process."""

import numpy as np
import pytest

from neuromesh.cli import main, parse_neurons
from neuromesh.emulator import Emulator
from neuromesh.examples import example_inputs, feedforward_2x2
from neuromesh.image import load


def test_example_saves_an_image_that_run_reproduces(tmp_path, capsys):
    img = tmp_path / "ex.nmi"
    assert main(["example", "--steps", "50", "--batch", "2", "-o", str(img), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "geometry   2x2" in text and "wrote" in text
    out = tmp_path / "out.npz"
    assert main(["run", str(img), "--input", str(tmp_path / "ex.inputs.npz"), "-o", str(out),
                 "--probe", "0-2,40", "--quiet"]) == 0
    image = feedforward_2x2()
    x = example_inputs(image, steps=50, batch=2)
    ref = Emulator(image, batch=2).run(x, probe=[0, 1, 2, 40])
    with np.load(out) as f:
        np.testing.assert_array_equal(f["outputs"], ref.outputs)
        np.testing.assert_array_equal(f["probe_v"], ref.probes["v"])
        np.testing.assert_array_equal(f["probe_neurons"], [0, 1, 2, 40])
        np.testing.assert_array_equal(f["synaptic_events"], ref.synaptic_events)
    text = capsys.readouterr().out
    assert f"neuron spikes per row: {ref.neuron_spikes.tolist()}" in text
    # The activity counters (docs/architecture.md §13), summed over the rows:
    # their spikes and synaptic ops are the run's totals.
    lines = text.splitlines()
    head = lines.index(next(line for line in lines if line.startswith("activity counters")))
    assert lines[head] == ("activity counters from the emulator (docs/architecture.md §13), "
                           "50 steps, summed over 2 batch rows")
    total = next(line for line in lines[head:] if line.split()[0] == "total").split()[1:]
    spikes, updates, synops = (int(v) for v in total[:3])
    assert spikes == ref.neuron_spikes.sum() and synops == ref.synaptic_events.sum()
    assert updates == 2 * 50 * 4 * 32       # rows x steps x cores x n_neurons


def test_info_reports_memory_use(tmp_path, capsys):
    img = tmp_path / "ex.nmi"
    main(["example", "--steps", "1", "--batch", "1", "-o", str(img), "--quiet"])
    capsys.readouterr()
    assert main(["info", str(img)]) == 0
    lines = capsys.readouterr().out.splitlines()
    core3 = next(line for line in lines if line.split()[:2] == ["3", "1,1"])
    assert core3.split()[2:] == ["8/32", "96/128", "768/4096", "8/64", "1"]
    assert load(img).n_outputs == 8


def test_errors_are_reported_not_raised(tmp_path, capsys):
    bad = tmp_path / "bad.nmi"
    bad.write_bytes(b"hello")
    assert main(["info", str(bad)]) == 2
    assert "wrong magic" in capsys.readouterr().err
    img = tmp_path / "ex.nmi"
    main(["example", "--steps", "1", "--batch", "1", "-o", str(img), "--quiet"])
    np.savez(tmp_path / "x.npz", other=np.zeros(3))
    assert main(["run", str(img), "--input", str(tmp_path / "x.npz")]) == 2
    assert "no array named 'spikes'" in capsys.readouterr().err
    assert main(["run", str(img)]) == 2
    assert "give --input, --steps or both" in capsys.readouterr().err


def test_parse_neurons():
    assert parse_neurons("0-3,7").tolist() == [0, 1, 2, 3, 7]
    with pytest.raises(ValueError, match="cannot read 'x'"):
        parse_neurons("1,x")
