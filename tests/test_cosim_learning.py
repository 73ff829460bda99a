"""Co-simulation of learning images (docs/architecture.md §11): the chip
built with its learning engines (``Chip(..., learning=True)``) in Verilator,
driven through the host link only, against the emulator. After every step
the outputs, the neuron state and every learning word read back over the
host link -- SYNAPSE (learned ``w_mant``), LEARN, LGROUP, RULE, XTRACE,
YTRACE, TAG -- equal ``Emulator.learning_words()``, and the activity
counters (§13, LEARN included) equal ``Emulator.counters()``."""

import os

import numpy as np
import pytest
from test_learning_reference import G, random_chip

from neuromesh.chip import Counter, LearnRegion
from neuromesh.config import decode
from neuromesh.emulator import Emulator
from neuromesh.sim.randomgen import random_image, random_inputs
from neuromesh.sim.runner import learning_chip, run_amaranth, run_verilator, write_case

STEPS = 40


def cases(tmp_path, seeds, steps=STEPS):
    out = []
    for seed in seeds:
        image = random_chip(seed, seed % 2 == 1)
        x = np.random.default_rng(1000 + seed).random((steps, 6)) < 0.35
        out.append(write_case(tmp_path, f"learn-{seed}", image, x))
    return out


def test_random_learning_chips_match_the_emulator_every_step(tmp_path):
    """Random rules, plastic synapse sets, sign modes, precisions, reward
    settings; half with stochastic rounding (traces, weights, tags); both
    cores; >= 20 epochs per core (t_epoch <= 2 here)."""
    seeds = [s for s in range(40) if
             int(decode(random_chip(s, s % 2 == 1))[LearnRegion.LEARN]["t_epoch"].max()) <= 2]
    seeds = seeds[:8]
    assert len(seeds) == 8 and {s % 2 for s in seeds} == {0, 1}
    # Plus a learning-free image: the learning build runs it unchanged.
    plain = random_image(5, G, n_inputs=6)
    extra = write_case(tmp_path, "plain", plain, random_inputs(5, plain, STEPS))
    result = run_verilator(G, cases(tmp_path, seeds) + [extra], chip_factory=learning_chip)
    print(result.summary())
    assert result.identical, result.summary()
    assert result.cases == len(seeds) + 1 and result.steps == (len(seeds) + 1) * STEPS
    # The cases do learn: weights and tags move in every case.
    for seed in seeds:
        image = random_chip(seed, seed % 2 == 1)
        emu = Emulator(image)
        before = emu.read_state()
        emu.run(np.random.default_rng(1000 + seed).random((STEPS, 6)) < 0.35)
        after = emu.read_state()
        assert (after["w_mant"] != before["w_mant"]).any(), seed
        # ... and the LEARN counters compared every step are not all zero (§13).
        assert emu.counters()[0, :, Counter.LEARN].any(), seed


@pytest.mark.slow
def test_long_run_random_learning_chips(tmp_path):
    """Opt-in (``pytest -m slow``): 1000 random learning chips
    (``NEUROMESH_LEARN_COSIM_CASES`` overrides), 60 steps each: >= 20 epochs
    per core (t_epoch <= 3)."""
    n = int(os.environ.get("NEUROMESH_LEARN_COSIM_CASES", 1000))
    for start in range(100, 100 + n, 50):
        seeds = range(start, min(start + 50, 100 + n))
        result = run_verilator(G, cases(tmp_path / str(start), seeds, steps=60),
                               chip_factory=learning_chip)
        print(f"seeds {seeds.start}..{seeds.stop - 1}: {result.summary()}", flush=True)
        assert result.identical, result.summary()


def test_a_missing_learning_phase_is_caught(tmp_path, monkeypatch):
    """Mutation check: a chip whose controller never starts the engines must
    diverge in the learning words at the first step, and the report names
    the region and word."""
    from neuromesh.rtl.controller import TimestepController
    elaborate = TimestepController.elaborate

    def without_learning_phase(self, platform):
        self.learning = False
        return elaborate(self, platform)

    monkeypatch.setattr(TimestepController, "elaborate", without_learning_phase)
    image = random_chip(0, False)
    x = np.random.default_rng(1000).random((1, 6)) < 0.35
    result = run_amaranth(image, x, chip_factory=learning_chip)
    assert not result.identical
    d = result.divergences[0]
    assert d["step"] == 0 and d["field"].endswith(" word"), d
    assert "first divergence at step 0" in result.summary()


def test_host_reward_reset_and_address_map(tmp_path):
    """Through the host link (sim/learning_host.py): regions 8–13 are mapped
    with their sizes (one word past each end is BAD_ADDRESS); a host WRITE
    of LSTATE's reward acts like ``Emulator.set_reward`` (§11.4); RESET
    STATE clears XTRACE, YTRACE, TAG and LSTATE and keeps SYNAPSE,
    CONTROL/XCFG/YCFG, LFSR, LGROUP and RULE; RESET ALL clears every
    learning word (§11.9)."""
    image = random_chip(3, True)
    x = np.random.default_rng(7).random((8, 6)) < 0.5
    case = write_case(tmp_path, "host", image, x)
    case.update(reward_step=4, rewards=[-77, 27])
    result = run_verilator(G, [case], chip_factory=learning_chip, mode="learning-host")
    assert result.identical, result.summary()
    # The checks are not vacuous: before the RESETs every cleared word is set.
    emu = Emulator(image)
    emu.run(x[:4])
    emu.set_reward(np.array([-77, 27]))
    emu.run(x[4:])
    words = emu.learning_words()
    for region in (LearnRegion.XTRACE, LearnRegion.YTRACE, LearnRegion.TAG):
        assert words[region].any(axis=-1).all(), region
    assert words[LearnRegion.LEARN][..., 3].all() and words[LearnRegion.LEARN][..., 4].all()


@pytest.mark.slow
def test_random_learning_chips_with_narrow_fields(tmp_path):
    """Opt-in: the same random chips on a learning build whose cores store
    narrowed words (``narrow_fields``, as the board builds do)."""
    from neuromesh.rtl.chip import Chip

    def narrow_learning_chip(geometry):
        return Chip(geometry, learning=True, core_args={"narrow_fields": True})

    result = run_verilator(G, cases(tmp_path, range(10)), chip_factory=narrow_learning_chip)
    assert result.identical, result.summary()


def load_example(name):
    import importlib.util
    import sys
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_stdp_pattern_example_shortened(tmp_path):
    """Opt-in: examples/stdp_pattern.py's chip (200 plastic synapses, STDP
    with stochastic weight rounding, an epoch every step), 150 steps of its
    input (noise and pattern presentations), identical every step."""
    ex = load_example("stdp_pattern")
    task = ex.Task()
    image = ex.build_chip(task)
    x = ex.make_inputs(task, 150, 1, 0)[0][:, 0]
    result = run_verilator(image.geometry, [write_case(tmp_path, "stdp", image, x)],
                           chip_factory=learning_chip)
    assert result.identical, result.summary()
    emu = Emulator(image)
    emu.run(x)
    assert (emu.read_state()["w_mant"] != Emulator(image).read_state()["w_mant"]).any()


@pytest.mark.slow
def test_stdp_reward_example_shortened(tmp_path):
    """Opt-in: examples/stdp_reward.py's chip (R-STDP with tags, stochastic
    weight and tag rounding, two cores), three trials of its protocol
    (stimulus, host-written reward of either sign, pause), identical every
    step."""
    ex = load_example("stdp_reward")
    image = ex.build_chip(0)
    rng = np.random.default_rng(1)
    blocks, rewards, t = [], {}, 0
    for which, reward in ((0, [16, -16]), (2, [-16, 16]), (3, [16, -16])):
        blocks += [ex.stimulus(rng, [which], 1)[:, 0],
                   np.zeros((ex.REWARD_STEPS + ex.PAUSE, ex.N_IN), bool)]
        t += ex.PRESENT
        rewards[t] = reward
        rewards[t + ex.REWARD_STEPS] = [0, 0]
        t += ex.REWARD_STEPS + ex.PAUSE
    x = np.concatenate(blocks)
    case = write_case(tmp_path, "rstdp", image, x)
    case["rewards"] = rewards
    result = run_verilator(image.geometry, [case], chip_factory=learning_chip)
    assert result.identical, result.summary()
