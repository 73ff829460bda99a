"""Co-simulation top level: the chip plus frame-sized byte buffers (Verilog).

A simulator testbench that handed the host link one byte per clock would
spend its time in Python. This wrapper takes a whole frame at once on a wide
port and shifts it into the chip's ``rx`` at one byte per clock, and it
collects ``tx`` bytes into a wide register, raising ``tx_attention`` when the
chip has gone quiet (or the buffer is full). A testbench therefore acts only
at protocol events; the clock runs inside the simulator.

The wrapper is plain Verilog around the Amaranth-generated ``neuromesh_chip``:
it is test infrastructure, not part of the chip, and frame-wide registers are
cheap for Verilator but slow to elaborate in Amaranth.

Ports: ``rx_frame`` (byte ``i`` at bits ``8i+7..8i``), ``rx_len``, ``rx_go``
(a clock with it high starts sending), ``rx_busy``; ``tx_buf`` (the oldest
byte most significant within the low ``8*tx_len`` bits), ``tx_len``,
``tx_attention``, ``tx_clear`` (empties the buffer; no byte is accepted in
that clock); ``cycles`` (the controller's running-cycle counter).
"""

from neuromesh.protocol import MAX_PAYLOAD

__all__ = ["RX_BYTES", "TX_BYTES", "QUIET_CYCLES", "CHIP_MODULE", "WRAPPER_MODULE",
           "wrapper_verilog"]

RX_BYTES = 6 + MAX_PAYLOAD      #: the largest frame
TX_BYTES = 6 + MAX_PAYLOAD      #: the largest response (a full READ or OUTPUT)
QUIET_CYCLES = 24               #: tx silence that raises ``tx_attention``
CHIP_MODULE = "neuromesh_chip"
WRAPPER_MODULE = "cosim_top"


def wrapper_verilog() -> str:
    """Verilog source of the ``cosim_top`` wrapper around ``neuromesh_chip``."""
    return f"""
// The bench reaches only these ports; the chip inside stays private, so the
// simulator may optimize it (see FAST_ARGS in sim/runner.py).
module {WRAPPER_MODULE} (
    /* verilator public_flat_rw_on */
    input  wire clk,
    input  wire rst,
    input  wire [{8 * RX_BYTES - 1}:0] rx_frame,
    input  wire [15:0] rx_len,
    input  wire rx_go,
    output wire rx_busy,
    output reg  [{8 * TX_BYTES - 1}:0] tx_buf,
    output reg  [15:0] tx_len,
    output wire tx_attention,
    input  wire tx_clear,
    output wire [63:0] cycles
    /* verilator public_off */
);
    /* verilator public_module */
    reg [{8 * RX_BYTES - 1}:0] shift;
    reg [15:0] left;
    reg [7:0] quiet;
    wire rx_ready, tx_valid;
    wire [7:0] tx_payload;
    wire full = tx_len == 16'd{TX_BYTES};
    wire tx_ready = !full && !tx_clear;

    {CHIP_MODULE} chip (
        .clk(clk), .rst(rst),
        .rx__valid(left != 16'd0), .rx__ready(rx_ready), .rx__payload(shift[7:0]),
        .tx__valid(tx_valid), .tx__ready(tx_ready), .tx__payload(tx_payload),
        .cycles(cycles));

    assign rx_busy = left != 16'd0;
    assign tx_attention = tx_len != 16'd0 && (quiet == 8'd{QUIET_CYCLES} || full);

    always @(posedge clk) begin
        if (rst) begin
            left <= 16'd0;
            tx_len <= 16'd0;
            quiet <= 8'd0;
        end else begin
            if (rx_go && left == 16'd0) begin
                shift <= rx_frame;
                left <= rx_len;
            end else if (left != 16'd0 && rx_ready) begin
                shift <= shift >> 8;
                left <= left - 16'd1;
            end
            if (tx_clear) begin
                tx_len <= 16'd0;
                quiet <= 8'd0;
            end else if (tx_valid && tx_ready) begin
                tx_buf <= {{tx_buf[{8 * TX_BYTES - 9}:0], tx_payload}};
                tx_len <= tx_len + 16'd1;
                quiet <= 8'd0;
            end else if (quiet != 8'd{QUIET_CYCLES}) begin
                quiet <= quiet + 8'd1;
            end
        end
    end
endmodule
"""
