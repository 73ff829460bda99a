"""Host access to the learning state of a chip with learning engines
(docs/architecture.md §11.4, §11.9), checked through the host driver on any
simulator: the address map of regions 8..13, the host's reward write, and
what RESET STATE and RESET ALL keep and clear."""

from __future__ import annotations

import numpy as np

from neuromesh.chip import LearnRegion, LearnWord, Region, pack_address

from .compare import first_divergence, learning_divergence, read_learning, write_reward

__all__ = ["host_access_checks"]


def _problem(step, what, chip, expected):
    return {"step": step, "field": what, "chip": chip, "emulator": expected}


async def host_access_checks(driver, image, inputs, *, reward_step=None,
                             rewards=None) -> list[dict]:
    """Load ``image`` (a learning image), check that one word past the end
    of each learning region is BAD_ADDRESS, run ``inputs`` step by step
    against the emulator (outputs, neuron state, learning words), writing
    the LSTATE reward of core ``k`` to ``rewards[k]`` (keeping
    ``epoch_phase``) before step ``reward_step``; then RESET STATE and RESET
    ALL. Returns the failed checks, as divergence dicts (empty: all passed).
    """
    from neuromesh.emulator import Emulator
    from neuromesh.host import HostLinkError
    from neuromesh.protocol import ErrorCode, ResetMode

    g = image.geometry
    emu = Emulator(image)
    problems = []
    await driver.load_image(image)
    want = emu.learning_words()
    sizes = {region: w.shape[-1] for region, w in want.items()}
    last = (g.rows - 1) << 4 | (g.cols - 1)
    for region in LearnRegion:
        size = sizes.get(region, 0)
        code = None
        try:
            await driver.read(int(pack_address(last, region, size)), 1)
        except HostLinkError as e:
            code = e.code
        if code != ErrorCode.BAD_ADDRESS:
            problems.append(_problem(-1, f"READ past {region.name}", code, "BAD_ADDRESS"))
    for t in range(len(inputs)):
        if t == reward_step:
            await write_reward(driver, g, rewards)
            emu.set_reward(np.asarray(rewards))
        out = await driver.run_inputs(image, inputs[t:t + 1])
        r = emu.run(inputs[t:t + 1])
        want = emu.learning_words()
        bad = (first_divergence(t, out[0], r.outputs[0, 0], await driver.read_state(g),
                                emu.read_state(), g)
               or learning_divergence(t, await read_learning(driver, g, sizes), want, g))
        if bad:
            return problems + [bad]
    before = {region: w[0] for region, w in want.items()}
    steps = len(inputs)

    await driver.reset(ResetMode.STATE)
    after = await read_learning(driver, g, sizes)
    kept = {Region.SYNAPSE: None, LearnRegion.LGROUP: None, LearnRegion.RULE: None,
            LearnRegion.LEARN: [LearnWord.CONTROL, LearnWord.XCFG, LearnWord.YCFG,
                                LearnWord.LFSR]}
    cleared = {LearnRegion.XTRACE: None, LearnRegion.YTRACE: None, LearnRegion.TAG: None,
               LearnRegion.LEARN: [LearnWord.LSTATE]}
    for rule, expect in ((kept, lambda region, cols: before[region][:, cols]),
                         (cleared, lambda region, cols: 0 * before[region][:, cols])):
        for region, words in rule.items():
            cols = slice(None) if words is None else words
            got, exp = after[region][:, cols], expect(region, cols)
            if not np.array_equal(got, exp):
                problems.append(_problem(steps, f"{region.name} after RESET STATE",
                                         got.tolist(), exp.tolist()))
    await driver.reset(ResetMode.ALL)
    for region, words in (await read_learning(driver, g, sizes)).items():
        if words.any():
            problems.append(_problem(steps, f"{region.name} after RESET ALL",
                                     words.tolist(), 0))
    return problems
