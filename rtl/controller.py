"""The timestep controller: the barrier of docs/architecture.md §7.

It owns the 32-bit step counter, sequences a RUN (inject host spikes, then
neuron pass + delivery per step) and a RESET, and decides when a phase is
over: every core idle and the mesh empty. Every place a packet can be held
(router FIFOs, fan-out and synapse pipelines, spike lists) reports busy, and
a packet moves from one such place to the next in one clock, so "all idle"
at a clock edge means no packet exists; once neuron passes have finished,
nothing can create one again, so the condition is stable when seen.
"""

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["TimestepController"]


_MEMBERS = {
    "run_start": In(1),
    "run_steps": In(32),
    "injecting": In(1),
    "step_ack": In(1),
    "reset_start": In(1),
    "reset_mode": In(1),
    "all_idle": In(1),
    "step": Out(32),
    "step_done": Out(1),
    "run_done": Out(1),
    "reset_done": Out(1),
    "pass_start": Out(1),
    "syn_base": Out(32),
    "clear_start": Out(1),
    "clear_all": Out(1),
    "running": Out(1),
    "cycles": Out(64),
}


class TimestepController(wiring.Component):
    """Sequence RUN and RESET commands from the host link.

    Attributes
    ----------
    run_start, run_steps:
        Pulse from the host link: run ``run_steps`` (>= 1) steps.
    injecting:
        High while the host link still sends queued host spikes.
    step_ack:
        Pulse from the host link: the outputs of the finished step are sent.
    reset_start, reset_mode:
        Pulse from the host link: clear state (mode 0) or everything (mode 1).
    step, step_done, run_done, reset_done:
        To the host link: the step counter, and pulses when a step / the RUN /
        the RESET is finished.
    pass_start, syn_base, clear_start, clear_all:
        To every core (see :class:`~neuromesh.rtl.core.NeuronCore`).
    all_idle:
        AND of every core's ``idle`` and the mesh's ``idle``, each sampled
        one clock earlier (``rtl/chip.py``): every state that starts work
        (PASS, LEARN, RESET, the end of INJECT) is followed by a state that
        does not test it, so the one clock of delay is never seen.
    cycles:
        Clock cycles spent in RUN phases since reset (for cycle reports).
    learn_start, learn_enabled:
        Only with ``learning``: after the barrier of every step, if any
        core's learning engine is on (``learn_enabled``), pulse
        ``learn_start`` and wait for every core idle again before
        ``step_done`` (docs/architecture.md §11.7).
    """


    def __init__(self, *, learning: bool = False):
        self.learning = learning
        members = dict(_MEMBERS)
        if learning:
            members.update(learn_start=Out(1), learn_enabled=In(1))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        left = Signal(32)
        with m.If(self.running):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.run_start):
                    m.d.sync += [left.eq(self.run_steps), self.syn_base.eq(self.step),
                                 self.running.eq(1)]
                    m.next = "INJECT"
                with m.Elif(self.reset_start):
                    m.d.comb += [self.clear_start.eq(1), self.clear_all.eq(self.reset_mode)]
                    m.next = "RESET_GUARD"
            with m.State("INJECT"):
                # Host spikes of the first step land in slot t + delay.
                with m.If(~self.injecting):
                    m.next = "INJECT_GUARD"
            with m.State("INJECT_GUARD"):
                with m.If(self.injecting):
                    m.next = "INJECT"
                with m.Elif(self.all_idle):
                    m.next = "PASS"
            with m.State("PASS"):
                m.d.comb += self.pass_start.eq(1)
                m.d.sync += self.syn_base.eq(self.step + 1)
                m.next = "PASS_GUARD"
            with m.State("PASS_GUARD"):
                # The cores raise busy in the clock after pass_start.
                m.next = "DELIVER"
            with m.State("DELIVER"):
                with m.If(self.all_idle):
                    if self.learning:
                        with m.If(self.learn_enabled):
                            m.next = "LEARN"
                        with m.Else():
                            m.d.comb += self.step_done.eq(1)
                            m.next = "OUTPUT"
                    else:
                        m.d.comb += self.step_done.eq(1)
                        m.next = "OUTPUT"
            if self.learning:
                # The learning phase (§11.7): after the barrier, before the
                # next step's host input.
                with m.State("LEARN"):
                    m.d.comb += self.learn_start.eq(1)
                    m.next = "LEARN_GUARD"
                with m.State("LEARN_GUARD"):
                    # The cores raise busy in the clock after learn_start.
                    m.next = "LEARN_WAIT"
                with m.State("LEARN_WAIT"):
                    with m.If(self.all_idle):
                        m.d.comb += self.step_done.eq(1)
                        m.next = "OUTPUT"
            with m.State("OUTPUT"):
                with m.If(self.step_ack):
                    m.d.sync += [self.step.eq(self.step + 1), left.eq(left - 1)]
                    with m.If(left == 1):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "PASS"
            with m.State("DONE"):
                m.d.comb += self.run_done.eq(1)
                m.d.sync += self.running.eq(0)
                m.next = "IDLE"
            with m.State("RESET_GUARD"):
                m.next = "RESET_WAIT"
            with m.State("RESET_WAIT"):
                with m.If(self.all_idle):
                    m.d.sync += self.step.eq(0)
                    m.next = "RESET_DONE"
            with m.State("RESET_DONE"):
                m.d.comb += self.reset_done.eq(1)
                m.next = "IDLE"
        return m
