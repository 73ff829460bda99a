"""Co-simulation: the generated Verilog in Verilator, driven through the host
link, equals the emulator bit for bit, every step."""

import os
import time

import pytest

from neuromesh.rtl.neuron import NeuronDatapath
from neuromesh.sim.campaign import GEOMETRIES, corner_cases, run_campaign
from neuromesh.sim.runner import run_amaranth, run_verilator, write_case


def campaign_seed():
    """A new seed each run (printed), or NEUROMESH_COSIM_SEED to replay one."""
    return int(os.environ.get("NEUROMESH_COSIM_SEED", time.time_ns() % 1_000_000_007))


def test_random_campaign_is_identical(tmp_path):
    seed = campaign_seed()
    print(f"\nNEUROMESH_COSIM_SEED={seed}")
    camp = run_campaign(160, 100, seed, tmp_path)
    print(camp.summary())
    assert camp.cases >= 160 + 10 * len(GEOMETRIES)
    assert camp.steps >= 160 * 100
    assert not camp.divergences, camp.summary()


def test_random_campaign_without_overlap_is_identical(tmp_path):
    """The core form without overlap (the iCEBreaker's, docs/architecture.md
    §6.7) on two geometries: a 4-slot and a 16-slot ring."""
    from neuromesh.rtl.chip import Chip
    seed = campaign_seed()
    print(f"\nNEUROMESH_COSIM_SEED={seed}")
    geometries = {k: GEOMETRIES[k] for k in ("2x1", "2x2")}
    camp = run_campaign(40, 100, seed, tmp_path, geometries=geometries,
                        chip_factory=lambda g: Chip(g, counters=True,
                                                    core_args={"overlap": False}))
    print(camp.summary())
    assert camp.cases >= 40
    assert not camp.divergences, camp.summary()


def test_a_wrong_rounding_is_caught(tmp_path, monkeypatch):
    """Mutation check: a test-only RTL variant that rounds decays toward
    minus infinity must diverge, and the report must name it."""
    monkeypatch.setattr(NeuronDatapath, "round_toward_zero", False)
    g = GEOMETRIES["1x1"]
    cases = [write_case(tmp_path, name, image, x) for name, image, x in corner_cases(g)
             if name == "negative-decays"]
    result = run_verilator(g, cases)
    assert not result.identical
    d = result.divergences[0]
    assert d["field"] in ("u", "v") and d["step"] == 0
    assert abs(d["chip"] - d["emulator"]) == 1
    assert "first divergence at step 0" in result.summary()


def test_amaranth_path_reports_identical_and_divergence(monkeypatch):
    g = GEOMETRIES["2x1"]
    name, image, x = next(c for c in corner_cases(g) if c[0] == "negative-decays")
    assert run_amaranth(image, x, steps=3).identical
    monkeypatch.setattr(NeuronDatapath, "round_toward_zero", False)
    result = run_amaranth(image, x, steps=3)
    assert not result.identical and result.divergences[0]["step"] == 0


@pytest.mark.slow
def test_long_campaign(tmp_path):
    """The opt-in long run (docs/verification.md records its result)."""
    seed = campaign_seed()
    print(f"\nNEUROMESH_COSIM_SEED={seed}")
    camp = run_campaign(int(os.environ.get("NEUROMESH_COSIM_CASES", 10_000)), 100, seed,
                        tmp_path)
    print(camp.summary())
    assert not camp.divergences, camp.summary()


def test_corner_cases_exercise_their_corners():
    """The directed cases really reach wrap, clamp and refractory."""
    from neuromesh.emulator import Emulator
    cases = {name: (image, x) for name, image, x in corner_cases(GEOMETRIES["1x1"])}
    image, x = cases["u-wraps-up"]
    r = Emulator(image).run(x, probe=[0])
    assert (r.probes["u"][:, 0, 0] < 0).any()           # wrapped from +2**23
    image, x = cases["v-clamps-down"]
    r = Emulator(image).run(x, probe=[0])
    assert (r.probes["v"][:, 0, 0] == -(2**23 - 1)).any()
    image, x = cases["threshold-and-refractory"]
    r = Emulator(image).run(x, probe=[0], record=("refractory",))
    assert r.probes["refractory"].max() == 3

    # The optional profile fields (§3.2): the delayed resets leave the fired
    # potential in place for one step, >= fires at equality, the floor holds.
    for name in ("delayed-subtract-reset", "delayed-zero-reset"):
        image, x = cases[name]
        r = Emulator(image).run(x, probe=[0])
        fired = r.probes["spikes"][:, 0, 0]
        assert fired.sum() >= 2, name
        assert (r.probes["v"][:, 0, 0][fired] > 20 << 6).all(), name
    image, x = cases["threshold-ge"]
    r = Emulator(image).run(x, probe=[0])
    assert r.probes["spikes"].any()
    image, x = cases["threshold-ge-zero-fires-at-rest"]
    assert Emulator(image).run(x, probe=[0]).probes["spikes"].all()
    image, x = cases["floor"]
    r = Emulator(image).run(x, probe=[0])
    assert (r.probes["v"][:, 0, 0] == -(3 << 14)).any()
    assert r.probes["v"].min() == -(3 << 14)


def test_verilator_runs_report_their_stages(tmp_path):
    """The stages of a Verilator co-simulation, as `neuromesh cosim` and
    `cosim-campaign` print them (the build is cached by the campaign test)."""
    import io

    from neuromesh.progress import Progress
    from neuromesh.sim.runner import stages
    g = GEOMETRIES["1x1"]
    name, image, x = corner_cases(g)[0]
    out = io.StringIO()
    with Progress("cosim", stages("1x1: "), stream=out, tty=False) as progress:
        result = run_verilator(g, [write_case(tmp_path, name, image, x)], progress=progress,
                               label="1x1: ")
    assert result.identical
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines[0] == "cosim 1/3: 1x1: Verilog (elaborate, convert)"
    assert lines[1] in ("cosim 2/3: 1x1: Verilator compile",
                        "cosim 2/3: 1x1: Verilator compile (cached)")
    assert lines[2] == "cosim 3/3: 1x1: simulate (1 case(s))"
    assert lines[3].startswith("cosim: done in ")
