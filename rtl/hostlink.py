"""The chip side of the host link (docs/architecture.md §9) in gateware.

:class:`HostLink` receives command frames from a byte stream, checks each
one whole before it has any effect, executes it (memory accesses, the spike
queue, RUN and RESET handshakes with the timestep controller) and answers
with response frames built by :class:`FrameSender`. The host-side codec
:mod:`neuromesh.protocol` is the reference; the tests drive this gateware
with its frames and decode the answers with its decoder.
"""

import struct

from amaranth import Cat, Const, Module, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from neuromesh.chip import (
    ADDRESS,
    COUNTERS_REGION,
    Counter,
    Geometry,
    LearnRegion,
    Region,
    learn_region_size,
)
from neuromesh.protocol import (
    INFO_LAYOUT,
    MAX_CHANNELS_PER_FRAME,
    MAX_PAYLOAD,
    MAX_SPIKES,
    MAX_WORDS,
    PROTOCOL_VERSION,
    SOF_CHIP,
    SOF_HOST,
    Command,
    ErrorCode,
    ResetMode,
    Response,
)
from neuromesh.rtl.crc import CRC16
from neuromesh.rtl.layouts import (
    byte_stream,
    mem_request_stream,
    mem_response_stream,
    packet_stream,
)

__all__ = ["CORE_ID", "ADDR", "TX_FRAME", "FrameSender", "HostLink"]


#: A core id as sent in addresses and SPIKES frames: ``y << 4 | x``.
CORE_ID = data.StructLayout({"x": unsigned(4), "y": unsigned(4)})

#: A 32-bit address of the map (``neuromesh.chip.ADDRESS``), core id split.
ADDR = data.StructLayout({
    "offset": unsigned(ADDRESS["offset"].width),
    "region": unsigned(ADDRESS["region"].width),
    "core": CORE_ID,
})
assert all(ADDR[name].offset == field.lsb and ADDR[name].width == field.width
           for name, field in ADDRESS.fields.items())

#: Fixed leading fields of WRITE/READ (and of DATA, which echoes them) and of SPIKES.
ACCESS_HEAD = data.StructLayout({"addr": ADDR, "count": unsigned(16)})
SPIKES_HEAD = data.StructLayout({"count": unsigned(16)})

#: The first payload bytes of a command, kept in a register as they arrive:
#: they hold every field the checks need except the WRITE words and the
#: SPIKES entries, which are read back from the payload memory.
COMMAND_HEAD = data.UnionLayout({
    "raw": unsigned(ACCESS_HEAD.size),
    "access": ACCESS_HEAD,
    "spikes": SPIKES_HEAD,
    "run": data.StructLayout({"steps": unsigned(32)}),
    "reset": data.StructLayout({"mode": unsigned(8)}),
})

#: One SPIKES entry as it arrives: ``core u8, axon u16``.
SPIKE_ENTRY = data.StructLayout({"core": CORE_ID, "axon": unsigned(16)})

ACCESS_BYTES = ACCESS_HEAD.size // 8   # WRITE/READ/DATA header: addr u32, count u16
SPIKES_BYTES = SPIKES_HEAD.size // 8   # SPIKES header: count u16
SPIKE_BYTES = SPIKE_ENTRY.size // 8    # one SPIKES entry
WORD_BYTES = 8                         # one memory word in WRITE/DATA
CHANNEL_BYTES = 2                      # one channel in OUTPUT

#: Fixed-size leading part of the response payloads.
ERROR_HEAD = data.StructLayout({"code": unsigned(8), "command": unsigned(8),
                                "detail": unsigned(32)})
STATUS_HEAD = data.StructLayout({"step": unsigned(32), "queued": unsigned(16),
                                 "discarded": unsigned(16)})
OUTPUT_HEAD = data.StructLayout({"step": unsigned(32), "count": unsigned(16)})

#: Memory attribute: no word is read in the clock it is written (payload: written
#: while a frame arrives, read while it executes; queue: SPIKES vs RUN; output
#: buffer: collected vs sent), so synthesis need not emulate read-during-write.
_NO_RW_CHECK = {"no_rw_check": 1}

#: Byte offset of the step counter in the INFO payload (its last field).
_INFO_STEP_OFFSET = struct.calcsize(INFO_LAYOUT.format[:-1])
assert INFO_LAYOUT.format.endswith("I") and _INFO_STEP_OFFSET + 4 == INFO_LAYOUT.size

#: A response for :class:`FrameSender`: its type and payload length, and up to
#: ``INFO_LAYOUT.size`` leading payload bytes (little-endian, byte 0 first)
#: sent from this record; the rest of the payload comes from the body stream.
TX_FRAME = data.StructLayout({
    "type": unsigned(8),
    "length": unsigned(16),
    "head": unsigned(8 * INFO_LAYOUT.size),
    "head_len": unsigned(INFO_LAYOUT.size.bit_length()),
})


class FrameSender(wiring.Component):
    """Sends one response frame ``SOF | TYPE | LEN | PAYLOAD | CRC16``.

    The CRC is computed on the fly as the bytes leave, so no payload is ever
    buffered here. Short responses are handed over whole in ``frame.head``;
    DATA and OUTPUT hand over their 6-byte header and then stream the rest
    through ``body``.

    Attributes
    ----------
    frame: In(stream.Signature(TX_FRAME))
        Starts a frame; accepted only while idle, so frames never interleave.
    body: In(byte_stream())
        The ``length - head_len`` payload bytes after the head.
    tx: Out(byte_stream())
        The bytes to the host.
    busy: Out(1)
        A frame is being sent (its last byte has not been accepted yet).
    """

    frame: In(stream.Signature(TX_FRAME))
    body: In(byte_stream())
    tx: Out(byte_stream())
    busy: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = CRC16()

        cur = Signal(TX_FRAME)   # counts length and head_len down as bytes go
        sent = self.tx.valid & self.tx.ready
        m.d.comb += crc.data.eq(self.tx.payload)

        def send(byte):
            m.d.comb += self.tx.valid.eq(1), self.tx.payload.eq(byte)

        def payload_sent():
            # Called under the handshake of a payload byte: where to go next.
            m.d.sync += cur.length.eq(cur.length - 1)
            with m.If(cur.length == 1):
                m.next = "CRC_LO"

        with m.FSM(name="sender"):
            with m.State("IDLE"):
                m.d.comb += self.frame.ready.eq(1), crc.clear.eq(1)
                with m.If(self.frame.valid):
                    m.d.sync += cur.eq(self.frame.payload)
                    m.next = "SOF"
            with m.State("SOF"):
                send(SOF_CHIP)
                with m.If(sent):
                    m.next = "TYPE"
            with m.State("TYPE"):
                send(cur.type)
                m.d.comb += crc.valid.eq(sent)
                with m.If(sent):
                    m.next = "LEN_LO"
            with m.State("LEN_LO"):
                send(cur.length[:8])
                m.d.comb += crc.valid.eq(sent)
                with m.If(sent):
                    m.next = "LEN_HI"
            with m.State("LEN_HI"):
                send(cur.length[8:])
                m.d.comb += crc.valid.eq(sent)
                with m.If(sent):
                    with m.If(cur.length == 0):
                        m.next = "CRC_LO"
                    with m.Elif(cur.head_len == 0):
                        m.next = "BODY"
                    with m.Else():
                        m.next = "HEAD"
            with m.State("HEAD"):
                send(cur.head[:8])
                m.d.comb += crc.valid.eq(sent)
                with m.If(sent):
                    m.d.sync += [
                        cur.head.eq(cur.head >> 8),
                        cur.head_len.eq(cur.head_len - 1),
                    ]
                    with m.If(cur.head_len == 1):
                        m.next = "BODY"
                    payload_sent()   # overrides BODY when the payload ends here
            with m.State("BODY"):
                m.d.comb += [
                    self.tx.valid.eq(self.body.valid),
                    self.tx.payload.eq(self.body.payload),
                    self.body.ready.eq(self.tx.ready),
                    crc.valid.eq(sent),
                ]
                with m.If(sent):
                    payload_sent()
            with m.State("CRC_LO"):
                send(crc.crc[:8])
                with m.If(sent):
                    m.next = "CRC_HI"
            with m.State("CRC_HI"):
                send(crc.crc[8:])
                with m.If(sent):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~self.frame.ready)
        return m


class HostLink(wiring.Component):
    """The chip side of the host-link protocol (docs/architecture.md §9).

    One command at a time: a frame is received whole into a payload memory
    with its CRC computed on the fly, checked in the order of §9.2 (CRC,
    type, length, values, addresses), and only then executed. While a
    command executes, ``rx`` is not ready (the host waits for the final
    response anyway, §9.2), so memory accesses never overlap a RUN or RESET.
    A READ is not buffered: the DATA frame's header goes out first and each
    word is sent as it comes back from ``mem_resp``.

    Memories: the frame payload (``MAX_PAYLOAD`` x 8 bits), the spike queue
    (``spike_queue_depth`` x (axon bits + 8)) and the output buffer
    (``output_buffer`` x 16 bits), each with one synchronous read port and
    one write port.

    Parameters
    ----------
    geometry: Geometry
        The chip's geometry; fixes the address checks and the INFO payload.
    spike_queue_depth: int
        Capacity of the host input spike queue, ``MAX_SPIKES`` (342) to 65535.
    timeout_cycles: int
        Inter-byte timeout inside a frame, in clock cycles (``rx_timeout`` of §9.2).
    output_buffer: int
        Host output channels buffered per step before an OUTPUT frame has to be
        sent mid-step, 1 to ``MAX_CHANNELS_PER_FRAME`` (512).
    learning: bool
        The cores have learning engines: WRITE/READ accept regions 8–13 with
        their sizes of a LEARNING image (§11.2) instead of BAD_ADDRESS.
    counters: bool
        The cores have activity counters: READ accepts region 14 (COUNTERS,
        ``len(Counter)`` words, §13); a WRITE there is BAD_ADDRESS.

    Attributes
    ----------
    rx: In(byte_stream())
        Bytes from the host.
    tx: Out(byte_stream())
        Bytes to the host.
    mem_req: Out(mem_request_stream())
        Word accesses to the chip memories, addressed as ``neuromesh.chip.ADDRESS``.
        Issued only while the chip is idle, one at a time for reads (the next
        read request follows the previous response).
    mem_resp: In(mem_response_stream())
        One 64-bit word per read request, in order.
    inject: Out(packet_stream())
        Queued host spikes as core-bound packets (``payload`` = axon), during
        phase I of a RUN.
    host_out: In(packet_stream())
        Host-bound packets during a RUN; ``payload`` is the output channel.
    run_start: Out(1)
        One-cycle pulse: a RUN of ``run_steps`` steps begins.
    run_steps: Out(32)
        Steps of the RUN, valid with ``run_start``.
    injecting: Out(1)
        High from ``run_start`` until the last queued spike has been accepted on
        ``inject`` (never high if the queue was empty).
    step_ack: Out(1)
        One-cycle pulse after ``step_done``: every OUTPUT frame of the step has
        left on ``tx``; the controller may start the next step.
    reset_start: Out(1)
        One-cycle pulse: reset the chip as ``reset_mode`` says.
    reset_mode: Out(1)
        0 for RESET STATE, 1 for RESET ALL; valid with ``reset_start``.
    step: In(32)
        The controller's step counter (the index of the next step to run).
    step_done: In(1)
        Pulse: a step finished and all its host-bound packets were accepted.
    run_done: In(1)
        Pulse: the RUN is complete and ``step`` is final.
    reset_done: In(1)
        Pulse: the reset is complete.
    """

    rx: In(byte_stream())
    tx: Out(byte_stream())
    mem_req: Out(mem_request_stream())
    mem_resp: In(mem_response_stream())
    inject: Out(packet_stream())
    host_out: In(packet_stream())
    run_start: Out(1)
    run_steps: Out(32)
    injecting: Out(1)
    step_ack: Out(1)
    reset_start: Out(1)
    reset_mode: Out(1)
    step: In(32)
    step_done: In(1)
    run_done: In(1)
    reset_done: In(1)

    def __init__(self, geometry: Geometry, *, spike_queue_depth: int = 512,
                 timeout_cycles: int = 100_000, output_buffer: int = MAX_CHANNELS_PER_FRAME,
                 learning: bool = False, counters: bool = False):
        if not isinstance(geometry, Geometry):
            raise TypeError(f"geometry must be a neuromesh.chip.Geometry, got {geometry!r}")
        if not MAX_SPIKES <= spike_queue_depth <= 0xFFFF:
            raise ValueError(f"spike_queue_depth = {spike_queue_depth} is outside "
                             f"[{MAX_SPIKES}, 65535] (§9.3)")
        if not 1 <= output_buffer <= MAX_CHANNELS_PER_FRAME:
            raise ValueError(f"output_buffer = {output_buffer} is outside "
                             f"[1, {MAX_CHANNELS_PER_FRAME}] (channels per OUTPUT frame)")
        if timeout_cycles < 1:
            raise ValueError(f"timeout_cycles = {timeout_cycles} must be at least 1")
        self.geometry = geometry
        self.spike_queue_depth = spike_queue_depth
        self.timeout_cycles = timeout_cycles
        self.output_buffer = output_buffer
        self.learning = learning
        self.counters = counters
        super().__init__()

    def _info_payload(self) -> int:
        g = self.geometry
        raw = INFO_LAYOUT.pack(PROTOCOL_VERSION, g.rows, g.cols, g.n_neurons, g.n_axons,
                               g.n_synapses, g.n_fanout, g.n_profiles, g.n_groups,
                               g.delay_slots, 0)
        return int.from_bytes(raw, "little")

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        depth = self.spike_queue_depth

        m.submodules.sender = sender = FrameSender()
        wiring.connect(m, wiring.flipped(self.tx), sender.tx)
        m.submodules.rx_crc = rx_crc = CRC16()
        m.d.comb += rx_crc.data.eq(self.rx.payload)

        # A frame is buffered whole and checked before anything acts on it.
        m.submodules.payload = payload_mem = Memory(shape=8, depth=MAX_PAYLOAD, init=[],
                                                    attrs=_NO_RW_CHECK)
        pay_wr = payload_mem.write_port()
        pay_rd = payload_mem.read_port()

        # The queue is emptied as a whole (RUN, RESET), so it needs no read
        # pointer: entries 0 .. queued-1 are live.
        # Only entries inside the mesh are queued (§9.3), so x and y need
        # only the bits of the mesh size, and are left out when it is 1.
        queue_fields = {"axon": unsigned(max(1, (g.n_axons - 1).bit_length()))}
        if g.cols > 1:
            queue_fields["x"] = unsigned((g.cols - 1).bit_length())
        if g.rows > 1:
            queue_fields["y"] = unsigned((g.rows - 1).bit_length())
        queue_entry = data.StructLayout(queue_fields)

        def queue_field(view, name):
            return view[name] if name in queue_fields else 0
        m.submodules.queue = queue_mem = Memory(shape=queue_entry, depth=depth, init=[],
                                                  attrs=_NO_RW_CHECK)
        q_wr = queue_mem.write_port()
        q_rd = queue_mem.read_port()

        m.submodules.outbuf = out_mem = Memory(shape=16, depth=self.output_buffer, init=[],
                                                attrs=_NO_RW_CHECK)
        o_wr = out_mem.write_port()
        o_rd = out_mem.read_port()

        # --- Receiver state ------------------------------------------------
        f_type = Signal(8)
        f_len = Signal(16)
        f_crc = Signal(16)
        head = Signal(COMMAND_HEAD)
        rx_count = Signal(range(MAX_PAYLOAD + 7))    # bytes of the frame so far, SOF included
        pay_idx = Signal(range(MAX_PAYLOAD + 1))
        timer = Signal(range(self.timeout_cycles + 1))
        discarded = Signal(16)
        err = Signal(ERROR_HEAD)

        # --- Execution state -----------------------------------------------
        queued = Signal(range(depth + 1))
        rd_ptr = Signal(range(MAX_PAYLOAD + 1))      # next payload byte to fetch
        byte_k = Signal(range(WORD_BYTES + 1))
        word = Signal(64)
        item = Signal(range(max(MAX_WORDS, MAX_SPIKES) + 1))
        entry = Signal(SPIKE_ENTRY)
        cur_addr = Signal(32)
        inj_idx = Signal(range(depth))
        n_out = Signal(range(self.output_buffer + 1))
        out_j = Signal(range(self.output_buffer))
        cur_step = Signal(32)
        reset_mode = Signal(1)
        step_done_seen = Signal()
        run_done_seen = Signal()
        reset_done_seen = Signal()

        m.d.comb += [
            self.run_steps.eq(head.run.steps),
            self.reset_mode.eq(reset_mode),
        ]

        access = head.access
        count = access.count
        spike_count = head.spikes.count

        # Address check of WRITE/READ (§5.1): the region size decides both
        # validity and, when only the end of the run is outside, the first
        # invalid address (offset = size, which never carries, §5.1).
        # A learning build also maps regions 8..13 (§11.2).
        sizes = {region: g.region_size(region) for region in Region}
        if self.learning:
            sizes.update({region: learn_region_size(g, region) for region in LearnRegion})
        if self.counters:
            sizes[COUNTERS_REGION] = len(Counter)
        region_size = Signal(range(max(sizes.values()) + 1))
        with m.Switch(access.addr.region):
            for region, size in sizes.items():
                with m.Case(region):
                    m.d.comb += region_size.eq(size)
        core_ok = (access.addr.core.x < g.cols) & (access.addr.core.y < g.rows)
        start_ok = core_ok & (access.addr.offset < region_size)
        addr_ok = start_ok & (access.addr.offset + count <= region_size)
        if self.counters:
            # COUNTERS is read-only (§13): a WRITE there names its first word.
            read_only = Signal()
            m.d.comb += read_only.eq((f_type == Command.WRITE)
                                     & (access.addr.region == COUNTERS_REGION))
            addr_ok = addr_ok & ~read_only
        first_bad_addr = Signal(ADDR)
        m.d.comb += first_bad_addr.eq(access.addr)
        with m.If(start_ok & ~read_only if self.counters else start_ok):
            m.d.comb += first_bad_addr.offset.eq(region_size)

        # LEN of each command (§9.3). A LEN too short to hold the count is
        # caught too: the right-hand sides are never below the header size.
        len_ok = Signal()
        with m.Switch(f_type):
            with m.Case(Command.IDENTIFY, Command.STATUS):
                m.d.comb += len_ok.eq(f_len == 0)
            with m.Case(Command.WRITE):
                m.d.comb += len_ok.eq(f_len == ACCESS_BYTES + WORD_BYTES * count)
            with m.Case(Command.READ):
                m.d.comb += len_ok.eq(f_len == ACCESS_BYTES)
            with m.Case(Command.SPIKES):
                m.d.comb += len_ok.eq(f_len == SPIKES_BYTES + SPIKE_BYTES * spike_count)
            with m.Case(Command.RUN):
                m.d.comb += len_ok.eq(f_len == len(head.run.steps) // 8)
            with m.Case(Command.RESET):
                m.d.comb += len_ok.eq(f_len == len(head.reset.mode) // 8)
        known = (f_type >= min(Command)) & (f_type <= max(Command))

        spike_ok = ((entry.core.x < g.cols) & (entry.core.y < g.rows)
                    & (entry.axon < g.n_axons))

        # The checks' outcomes, registered in PRECHECK for CHECK.
        c_crc_bad, c_known, c_len_ok = Signal(), Signal(), Signal()
        c_count_bad, c_addr_ok, c_spikes_over = Signal(), Signal(), Signal()
        c_bad_addr = Signal(ADDR)

        host_out_seen = self.host_out.valid & self.host_out.ready
        out_full = n_out == self.output_buffer

        def error(code, detail):
            m.d.sync += [err.code.eq(code), err.command.eq(f_type), err.detail.eq(detail)]
            m.next = "SEND_ERROR"

        def respond(type_, length, head_value=0, head_len=0, then="HUNT"):
            m.d.comb += [
                sender.frame.valid.eq(1),
                sender.frame.payload.type.eq(type_),
                sender.frame.payload.length.eq(length),
                sender.frame.payload.head.eq(head_value),
                sender.frame.payload.head_len.eq(head_len),
            ]
            with m.If(sender.frame.ready):
                m.next = then

        def body(byte):
            m.d.comb += sender.body.valid.eq(1), sender.body.payload.eq(byte)
            return sender.body.ready

        def receive():
            """Take the next byte of a frame, or time out waiting for it."""
            m.d.comb += self.rx.ready.eq(1)
            with m.If(self.rx.valid):
                m.d.sync += timer.eq(0), rx_count.eq(rx_count + 1)
            with m.Elif(timer == self.timeout_cycles - 1):
                error(ErrorCode.TIMEOUT, rx_count)
            with m.Else():
                m.d.sync += timer.eq(timer + 1)
            return self.rx.valid

        def fetch(n, shift_reg):
            """Read ``n`` payload bytes from ``rd_ptr`` into ``shift_reg``, first
            byte lowest; ``n + 1`` cycles because the read port is synchronous.
            Returns the condition of the last cycle."""
            with m.If(byte_k != n):
                m.d.comb += pay_rd.addr.eq(rd_ptr + byte_k)
            with m.If(byte_k != 0):
                m.d.sync += shift_reg.eq(Cat(Value.cast(shift_reg)[8:], pay_rd.data))
            m.d.sync += byte_k.eq(byte_k + 1)
            last = byte_k == n
            with m.If(last):
                m.d.sync += byte_k.eq(0), rd_ptr.eq(rd_ptr + n)
            return last

        with m.FSM(name="link"):
            # --- Receiving (§9.2) ------------------------------------------
            with m.State("HUNT"):
                m.d.comb += [self.rx.ready.eq(1), rx_crc.clear.eq(1)]
                with m.If(self.rx.valid):
                    with m.If(self.rx.payload == SOF_HOST):
                        m.d.sync += [
                            rx_count.eq(1), timer.eq(0), pay_idx.eq(0),
                            f_type.eq(0), f_len.eq(0), head.eq(0),
                        ]
                        m.next = "RX_TYPE"
                    with m.Elif(discarded != 0xFFFF):
                        m.d.sync += discarded.eq(discarded + 1)
            with m.State("RX_TYPE"):
                with m.If(receive()):
                    m.d.comb += rx_crc.valid.eq(1)
                    m.d.sync += f_type.eq(self.rx.payload)
                    m.next = "RX_LEN_LO"
            with m.State("RX_LEN_LO"):
                with m.If(receive()):
                    m.d.comb += rx_crc.valid.eq(1)
                    m.d.sync += f_len[:8].eq(self.rx.payload)
                    m.next = "RX_LEN_HI"
            with m.State("RX_LEN_HI"):
                length = Cat(f_len[:8], self.rx.payload)
                with m.If(receive()):
                    m.d.comb += rx_crc.valid.eq(1)
                    m.d.sync += f_len[8:].eq(self.rx.payload)
                    with m.If(length > MAX_PAYLOAD):
                        # Rejected at once; the rest of the frame is then
                        # hunted through as bytes outside frames.
                        error(ErrorCode.BAD_LENGTH, length)
                    with m.Elif(length == 0):
                        m.next = "RX_CRC_LO"
                    with m.Else():
                        m.next = "RX_PAYLOAD"
            with m.State("RX_PAYLOAD"):
                with m.If(receive()):
                    m.d.comb += [
                        rx_crc.valid.eq(1),
                        pay_wr.en.eq(1),
                        pay_wr.addr.eq(pay_idx),
                        pay_wr.data.eq(self.rx.payload),
                    ]
                    with m.Switch(pay_idx):
                        for i in range(COMMAND_HEAD.size // 8):
                            with m.Case(i):
                                m.d.sync += head.raw[8 * i:8 * i + 8].eq(self.rx.payload)
                    m.d.sync += pay_idx.eq(pay_idx + 1)
                    with m.If(pay_idx == f_len - 1):
                        m.next = "RX_CRC_LO"
            with m.State("RX_CRC_LO"):
                with m.If(receive()):
                    m.d.sync += f_crc[:8].eq(self.rx.payload)
                    m.next = "RX_CRC_HI"
            with m.State("RX_CRC_HI"):
                with m.If(receive()):
                    m.d.sync += f_crc[8:].eq(self.rx.payload)
                    m.next = "PRECHECK"

            # --- Checks, in the order of §9.2 --------------------------------
            # The frame is complete and stays put: PRECHECK registers every
            # check's outcome (comparators, the address and length arithmetic),
            # CHECK decides from those flip-flops. The clock this costs per
            # command takes the checks' logic out of the path into the link's
            # state and error registers, the board's critical path
            # (docs/synthesis.md, "iCEBreaker timing").
            with m.State("PRECHECK"):
                m.d.sync += [c_crc_bad.eq(f_crc != rx_crc.crc), c_known.eq(known),
                             c_len_ok.eq(len_ok),
                             c_count_bad.eq((count == 0) | (count > MAX_WORDS)),
                             c_addr_ok.eq(addr_ok), c_bad_addr.eq(first_bad_addr),
                             c_spikes_over.eq(queued + spike_count > depth)]
                m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += [cur_addr.eq(access.addr), item.eq(0), byte_k.eq(0)]
                with m.If(c_crc_bad):
                    error(ErrorCode.BAD_CHECKSUM, f_crc)
                with m.Elif(~c_known):
                    error(ErrorCode.UNKNOWN_COMMAND, f_type)
                with m.Elif(~c_len_ok):
                    error(ErrorCode.BAD_LENGTH, f_len)
                with m.Else():
                    with m.Switch(f_type):
                        with m.Case(Command.IDENTIFY):
                            m.next = "SEND_INFO"
                        with m.Case(Command.STATUS):
                            m.next = "SEND_STATUS"
                        with m.Case(Command.WRITE, Command.READ):
                            with m.If(c_count_bad):
                                error(ErrorCode.BAD_VALUE, count)
                            with m.Elif(~c_addr_ok):
                                error(ErrorCode.BAD_ADDRESS, c_bad_addr)
                            with m.Elif(f_type == Command.WRITE):
                                m.d.sync += rd_ptr.eq(ACCESS_BYTES)
                                m.next = "WRITE_FETCH"
                            with m.Else():
                                m.next = "SEND_DATA"
                        with m.Case(Command.SPIKES):
                            with m.If(c_spikes_over):
                                error(ErrorCode.BAD_VALUE, queued + spike_count)
                            with m.Elif(spike_count == 0):
                                m.next = "SEND_ACK"
                            with m.Else():
                                m.d.sync += rd_ptr.eq(SPIKES_BYTES)
                                m.next = "SPIKE_FETCH"
                        with m.Case(Command.RUN):
                            with m.If(head.run.steps == 0):
                                error(ErrorCode.BAD_VALUE, 0)
                            with m.Else():
                                m.next = "RUN_START"
                        with m.Case(Command.RESET):
                            with m.If(head.reset.mode > max(ResetMode)):
                                error(ErrorCode.BAD_VALUE, head.reset.mode)
                            with m.Else():
                                m.d.sync += reset_mode.eq(head.reset.mode[0])
                                m.next = "RESET_START"

            # --- WRITE: one word at a time from the payload memory ------------
            with m.State("WRITE_FETCH"):
                with m.If(fetch(WORD_BYTES, word)):
                    m.next = "WRITE_REQ"
            with m.State("WRITE_REQ"):
                m.d.comb += [
                    self.mem_req.valid.eq(1),
                    self.mem_req.payload.addr.eq(cur_addr),
                    self.mem_req.payload.data.eq(word),
                    self.mem_req.payload.write.eq(1),
                ]
                with m.If(self.mem_req.ready):
                    m.d.sync += cur_addr.eq(cur_addr + 1), item.eq(item + 1)
                    with m.If(item == count - 1):
                        m.next = "SEND_ACK"
                    with m.Else():
                        m.next = "WRITE_FETCH"

            # --- READ: the DATA frame is streamed as the words come back -------
            with m.State("SEND_DATA"):
                # DATA echoes the READ's address and count as its own header.
                respond(Response.DATA, ACCESS_BYTES + WORD_BYTES * count, head.raw,
                        ACCESS_BYTES, then="READ_REQ")
            with m.State("READ_REQ"):
                m.d.comb += [
                    self.mem_req.valid.eq(1),
                    self.mem_req.payload.addr.eq(cur_addr),
                    self.mem_req.payload.write.eq(0),
                ]
                with m.If(self.mem_req.ready):
                    m.next = "READ_RESP"
            with m.State("READ_RESP"):
                m.d.comb += self.mem_resp.ready.eq(1)
                with m.If(self.mem_resp.valid):
                    m.d.sync += word.eq(self.mem_resp.payload)
                    m.next = "READ_SEND"
            with m.State("READ_SEND"):
                with m.If(body(word[:8])):
                    m.d.sync += word.eq(word >> 8), byte_k.eq(byte_k + 1)
                    with m.If(byte_k == WORD_BYTES - 1):
                        m.d.sync += [byte_k.eq(0), cur_addr.eq(cur_addr + 1),
                                     item.eq(item + 1)]
                        with m.If(item == count - 1):
                            m.next = "HUNT"
                        with m.Else():
                            m.next = "READ_REQ"

            # --- SPIKES: check each entry and write it past the live queue;
            # ``queued`` grows only after every entry passed, so a rejected
            # frame leaves the queue as it was.
            with m.State("SPIKE_FETCH"):
                with m.If(fetch(SPIKE_BYTES, entry)):
                    m.next = "SPIKE_CHECK"
            with m.State("SPIKE_CHECK"):
                with m.If(~spike_ok):
                    error(ErrorCode.BAD_ADDRESS, Cat(entry.axon, entry.core))
                with m.Else():
                    m.d.comb += [
                        q_wr.en.eq(1),
                        q_wr.addr.eq(queued + item),
                        q_wr.data.axon.eq(entry.axon),
                        *[q_wr.data[f].eq(entry.core[f]) for f in ("x", "y")
                          if f in queue_fields],
                    ]
                    m.d.sync += item.eq(item + 1)
                    with m.If(item == spike_count - 1):
                        m.d.sync += queued.eq(queued + spike_count)
                        m.next = "SEND_ACK"
                    with m.Else():
                        m.next = "SPIKE_FETCH"

            # --- RUN (§9.6) ------------------------------------------------
            with m.State("RUN_START"):
                m.d.comb += [self.run_start.eq(1), self.injecting.eq(queued != 0)]
                m.d.sync += [
                    cur_step.eq(self.step), inj_idx.eq(0), n_out.eq(0),
                    step_done_seen.eq(0), run_done_seen.eq(0),
                ]
                with m.If(queued != 0):
                    m.next = "INJECT_FETCH"
                with m.Else():
                    m.next = "COLLECT"
            with m.State("INJECT_FETCH"):
                m.d.comb += [self.injecting.eq(1), q_rd.addr.eq(inj_idx)]
                m.next = "INJECT_SEND"
            with m.State("INJECT_SEND"):
                m.d.comb += [
                    self.injecting.eq(1),
                    q_rd.en.eq(0),
                    self.inject.valid.eq(1),
                    self.inject.payload.payload.eq(q_rd.data.axon),
                    self.inject.payload.x.eq(queue_field(q_rd.data, "x")),
                    self.inject.payload.y.eq(queue_field(q_rd.data, "y")),
                    self.inject.payload.to_host.eq(0),
                ]
                with m.If(self.inject.ready):
                    m.d.sync += inj_idx.eq(inj_idx + 1)
                    with m.If(inj_idx == queued - 1):
                        m.d.sync += queued.eq(0)
                        m.next = "COLLECT"
                    with m.Else():
                        m.next = "INJECT_FETCH"
            with m.State("COLLECT"):
                # A step's packets all arrive before its step_done, so once
                # step_done is seen nothing more is accepted until step_ack.
                m.d.comb += self.host_out.ready.eq(~out_full & ~step_done_seen)
                with m.If(host_out_seen):
                    m.d.comb += [
                        o_wr.en.eq(1),
                        o_wr.addr.eq(n_out),
                        o_wr.data.eq(self.host_out.payload.payload),
                    ]
                    m.d.sync += n_out.eq(n_out + 1)
                with m.If(out_full | (step_done_seen & (n_out != 0))):
                    m.next = "SEND_OUTPUT"
                with m.Elif(step_done_seen):
                    # step_ack promises the step's frames have left, so the
                    # last one's CRC must be out of the sender too.
                    with m.If(~sender.busy):
                        m.d.comb += self.step_ack.eq(1)
                        m.d.sync += [step_done_seen.eq(0), cur_step.eq(cur_step + 1)]
                with m.Elif(run_done_seen):
                    m.next = "SEND_DONE"
            with m.State("SEND_OUTPUT"):
                output_head = Signal(OUTPUT_HEAD)
                m.d.comb += output_head.step.eq(cur_step), output_head.count.eq(n_out)
                respond(Response.OUTPUT, OUTPUT_HEAD.size // 8 + CHANNEL_BYTES * n_out,
                        output_head, OUTPUT_HEAD.size // 8, then="OUTPUT_FETCH")
                m.d.sync += out_j.eq(0)
            with m.State("OUTPUT_FETCH"):
                m.d.comb += o_rd.addr.eq(out_j)
                m.next = "OUTPUT_LO"
            with m.State("OUTPUT_LO"):
                m.d.comb += o_rd.en.eq(0)
                with m.If(body(o_rd.data[:8])):
                    m.next = "OUTPUT_HI"
            with m.State("OUTPUT_HI"):
                m.d.comb += o_rd.en.eq(0)
                with m.If(body(o_rd.data[8:])):
                    m.d.sync += out_j.eq(out_j + 1)
                    with m.If(out_j == n_out - 1):
                        m.d.sync += n_out.eq(0)
                        m.next = "COLLECT"
                    with m.Else():
                        m.next = "OUTPUT_FETCH"
            with m.State("SEND_DONE"):
                m.d.sync += run_done_seen.eq(0)
                respond(Response.DONE, 4, self.step, 4)

            # --- RESET (§9.7) ----------------------------------------------
            with m.State("RESET_START"):
                m.d.comb += self.reset_start.eq(1)
                m.d.sync += reset_done_seen.eq(0)
                m.next = "RESET_WAIT"
            with m.State("RESET_WAIT"):
                with m.If(reset_done_seen):
                    m.d.sync += queued.eq(0), reset_done_seen.eq(0)
                    m.next = "SEND_ACK"

            # --- Short responses ---------------------------------------------
            with m.State("SEND_ACK"):
                respond(Response.ACK, 1, f_type, 1)
            with m.State("SEND_INFO"):
                info = Const(self._info_payload(), 8 * INFO_LAYOUT.size)
                respond(Response.INFO, INFO_LAYOUT.size,
                        info | (self.step << (8 * _INFO_STEP_OFFSET)), INFO_LAYOUT.size)
            with m.State("SEND_STATUS"):
                status = Signal(STATUS_HEAD)
                m.d.comb += [status.step.eq(self.step), status.queued.eq(queued),
                             status.discarded.eq(discarded)]
                respond(Response.STATUS, STATUS_HEAD.size // 8, status, STATUS_HEAD.size // 8)
            with m.State("SEND_ERROR"):
                respond(Response.ERROR, ERROR_HEAD.size // 8, err, ERROR_HEAD.size // 8)

        # The controller's pulses may come while the FSM is elsewhere (e.g.
        # step_done during a mid-step OUTPUT frame), so they are kept until
        # used. These come after the FSM so a pulse wins over a clear.
        with m.If(self.step_done):
            m.d.sync += step_done_seen.eq(1)
        with m.If(self.run_done):
            m.d.sync += run_done_seen.eq(1)
        with m.If(self.reset_done):
            m.d.sync += reset_done_seen.eq(1)
        return m
