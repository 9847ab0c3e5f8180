"""UART-to-CSR bridge: a framed request/response protocol mastering the AXI4-Lite CSR bus.

Frames (docs/uart-protocol.md, host side in :mod:`tunnelnic.driver.uart_protocol`):
request ``A5 cmd addr(2) data(4) crc(2)``, response ``5A status data(4) crc(2)``, big-endian,
CRC-16/IBM-3740 over the bytes between sync and CRC.

Robustness, by construction:

- Bytes outside a frame that are not the request sync byte are ignored (garbage, line noise).
- A frame whose bytes stop for ``timeout`` cycles (truncated) is dropped without an answer; a
  byte with a framing error (stop bit low) drops the frame in progress.
- A CRC mismatch answers ``BAD_CHECK`` and an unknown command ``BAD_CMD``; neither touches the
  bus. An address beyond the bus width answers ``BUS_ERROR`` without a bus access.
- Bytes that arrive while a request executes or its response is sent (an overrun of the
  half-duplex protocol) are discarded; the bridge then hunts for a new sync byte. A frame
  corrupted that way fails its CRC or times out.
- The bus access itself cannot wedge the bridge: the CSR block answers every access.

Every outcome is counted: ``stats`` pulses once per event (:data:`BRIDGE_STATS`; the NIC core
counts them in the ``uart_stats`` registers), registered one cycle late.

Latency: a response starts a few cycles after the request's last stop bit (plus the bus access,
3-4 cycles on :class:`hw.csr.CsrBlock`). Throughput: one access per 18 byte times. Reset: hunting,
line idle.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .axil import AxiLiteSignature
from .uart import UartRx, UartTx

__all__ = ["UartBridge", "BRIDGE_STATS", "SYNC_REQUEST", "SYNC_RESPONSE", "CMD_READ",
           "CMD_WRITE"]

#: One pulse per event (names of the ``uart_stats`` counters).
BRIDGE_STATS = data.StructLayout({
    "requests": 1,      # complete frames received (whatever their check)
    "ignored": 1,       # bytes outside a frame that are not the sync byte
    "framing": 1,       # bytes with a framing error (stop bit low); one inside a frame drops it
    "truncated": 1,     # frames dropped because their bytes stopped for ``timeout`` cycles
    "bad_check": 1,     # CRC mismatch: answered BAD_CHECK, not executed
    "bad_cmd": 1,       # unknown command: answered BAD_CMD, not executed
    "bad_addr": 1,      # address beyond the bus: answered BUS_ERROR, no bus access
    "bus_error": 1,     # the bus answered SLVERR (unmapped, or a write to a read-only register)
    "discarded": 1,     # bytes that arrived while a request executed or was answered (overrun)
})

SYNC_REQUEST, SYNC_RESPONSE = 0xA5, 0x5A
CMD_READ, CMD_WRITE = 0x52, 0x57
ST_OK, ST_BUS_ERROR, ST_BAD_CHECK, ST_BAD_CMD = 0, 1, 2, 3


def crc16_step(crc, byte):
    """CRC-16/IBM-3740 (poly 0x1021, MSB first) of ``crc`` advanced by one byte: an expression."""
    for i in reversed(range(8)):
        top = crc[15] ^ byte[i]
        crc = Cat(C(0, 1), crc[:15]) ^ Mux(top, 0x1021, 0)
    return crc


class _Crc16:
    """Byte-wide CRC register written as one whole-vector assignment (amaranth.lib.crc's
    per-bit assignments make Icarus' always_comb re-trigger itself forever)."""

    def __init__(self, m):
        self.start = Signal()
        self.valid = Signal()
        self.data = Signal(8)
        self.crc = Signal(16, init=0xFFFF)
        base = Mux(self.start, 0xFFFF, self.crc)
        m.d.sync += self.crc.eq(Mux(self.valid, crc16_step(base, self.data), base))


class UartBridge(wiring.Component):
    """See module docstring.

    Parameters
    ----------
    clk_freq : int
        Clock frequency in Hz.
    baud : int
        Baud rate (default 115200; up to ``clk_freq / 4``).
    addr_width : int
        Width of the AXI4-Lite address (<= 16).
    timeout : int or None
        Cycles of silence that drop a partial frame (default: 5 ms).
    """

    def __init__(self, clk_freq, baud=115200, addr_width=12, timeout=None):
        if not 2 <= addr_width <= 16:
            raise ValueError(f"bridge address width must be 2..16, not {addr_width}")
        self.clk_freq, self.baud, self.addr_width = clk_freq, baud, addr_width
        self.timeout = timeout if timeout is not None else clk_freq // 200
        # Build the UARTs here so a bad baud rate fails at construction.
        self._rx = UartRx(clk_freq, baud)
        self._tx = UartTx(clk_freq, baud)
        if self.timeout < 11 * self._rx.divisor:
            raise ValueError(f"timeout of {self.timeout} cycles is shorter than one byte "
                             f"({10 * self._rx.divisor} cycles)")
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1),
                          "bus": Out(AxiLiteSignature(addr_width)),
                          "stats": Out(BRIDGE_STATS)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = urx = self._rx
        m.submodules.tx = utx = self._tx
        crc = _Crc16(m)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), urx.o.ready.eq(1)]

        bus = self.bus
        frame = Signal(72)          # cmd, addr(2), data(4), crc(2), shifted in from the right
        count = Signal(range(10))
        timer = Signal(range(self.timeout + 1))
        status = Signal(8)
        rdata = Signal(32)
        aw_done = Signal()
        w_done = Signal()
        index = Signal(range(9))

        cmd = frame[64:72]
        addr = frame[48:64]
        wdata = frame[16:48]
        rx_crc = frame[0:16]
        byte_in = urx.o.valid & ~urx.o.payload.frame_err
        bad_byte = urx.o.valid & urx.o.payload.frame_err

        m.d.comb += [bus.awaddr.eq(addr), bus.araddr.eq(addr), bus.wdata.eq(wdata),
                     bus.wstrb.eq(0xF)]

        response = Signal(48)
        m.d.comb += response.eq(Cat(rdata, status, C(SYNC_RESPONSE, 8)))  # byte 0 = top

        # Bytes 0..5 of the response from `response` (sync first), then the CRC of bytes 1..5.
        out_bytes = Signal(64)
        m.d.comb += out_bytes.eq(Cat(response[40:48], response[32:40], response[24:32],
                                     response[16:24], response[8:16], response[0:8],
                                     crc.crc[8:16], crc.crc[0:8]))
        byte = out_bytes.word_select(index, 8)

        # The CRC unit is driven by pure expressions of the state (no default-then-override
        # processes, which Icarus' always_comb can spin on).
        with m.FSM() as fsm:
            with m.State("HUNT"):
                with m.If(byte_in & (urx.o.payload.data == SYNC_REQUEST)):
                    m.d.sync += [count.eq(0), timer.eq(0)]
                    m.next = "RECV"
            with m.State("RECV"):
                m.d.sync += timer.eq(timer + 1)
                with m.If(bad_byte | (timer == self.timeout)):
                    m.next = "HUNT"
                with m.Elif(byte_in):
                    m.d.sync += [frame.eq(Cat(urx.o.payload.data, frame[:64])),
                                 count.eq(count + 1), timer.eq(0)]
                    with m.If(count == 8):
                        m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += [rdata.eq(0), aw_done.eq(0), w_done.eq(0)]
                with m.If(crc.crc != rx_crc):
                    m.d.sync += status.eq(ST_BAD_CHECK)
                    m.next = "RESPOND"
                with m.Elif((cmd != CMD_READ) & (cmd != CMD_WRITE)):
                    m.d.sync += status.eq(ST_BAD_CMD)
                    m.next = "RESPOND"
                with m.Elif(addr[self.addr_width:] != 0 if self.addr_width < 16 else C(0)):
                    m.d.sync += status.eq(ST_BUS_ERROR)
                    m.next = "RESPOND"
                with m.Elif(cmd == CMD_READ):
                    m.next = "READ_ADDR"
                with m.Else():
                    m.next = "WRITE"
            with m.State("READ_ADDR"):
                m.d.comb += bus.arvalid.eq(1)
                with m.If(bus.arready):
                    m.next = "READ_DATA"
            with m.State("READ_DATA"):
                m.d.comb += bus.rready.eq(1)
                with m.If(bus.rvalid):
                    m.d.sync += [rdata.eq(bus.rdata),
                                 status.eq(Mux(bus.rresp != 0, ST_BUS_ERROR, ST_OK))]
                    m.next = "RESPOND"
            with m.State("WRITE"):
                m.d.comb += [bus.awvalid.eq(~aw_done), bus.wvalid.eq(~w_done)]
                with m.If(bus.awready):
                    m.d.sync += aw_done.eq(1)
                with m.If(bus.wready):
                    m.d.sync += w_done.eq(1)
                with m.If((aw_done | bus.awready) & (w_done | bus.wready)):
                    m.next = "WRITE_RESP"
            with m.State("WRITE_RESP"):
                m.d.comb += bus.bready.eq(1)
                with m.If(bus.bvalid):
                    m.d.sync += status.eq(Mux(bus.bresp != 0, ST_BUS_ERROR, ST_OK))
                    m.next = "RESPOND"
            with m.State("RESPOND"):
                m.d.sync += index.eq(0)
                m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [utx.i.valid.eq(1), utx.i.payload.eq(byte)]
                with m.If(utx.i.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == 7):
                        m.next = "HUNT"
        # Statistics: pure expressions of the state, registered as one vector.
        hunt, recv, check = fsm.ongoing("HUNT"), fsm.ongoing("RECV"), fsm.ongoing("CHECK")
        crc_ok = crc.crc == rx_crc
        cmd_ok = (cmd == CMD_READ) | (cmd == CMD_WRITE)
        addr_ok = addr[self.addr_width:] == 0 if self.addr_width < 16 else C(1)
        events = {
            "requests": check,
            "ignored": hunt & byte_in & (urx.o.payload.data != SYNC_REQUEST),
            "framing": bad_byte,
            "truncated": recv & ~bad_byte & (timer == self.timeout),
            "bad_check": check & ~crc_ok,
            "bad_cmd": check & crc_ok & ~cmd_ok,
            "bad_addr": check & crc_ok & cmd_ok & ~addr_ok,
            "bus_error": ((fsm.ongoing("READ_DATA") & bus.rvalid & (bus.rresp != 0)) |
                          (fsm.ongoing("WRITE_RESP") & bus.bvalid & (bus.bresp != 0))),
            "discarded": byte_in & ~hunt & ~recv,
        }
        m.d.sync += self.stats.as_value().eq(Cat(*(events[n] for n in BRIDGE_STATS.members)))

        sending = fsm.ongoing("SEND") & utx.i.ready
        receiving = fsm.ongoing("RECV") & byte_in & (timer != self.timeout)
        m.d.comb += [
            crc.data.eq(Mux(fsm.ongoing("SEND"), byte, urx.o.payload.data)),
            crc.start.eq((fsm.ongoing("HUNT") & byte_in
                          & (urx.o.payload.data == SYNC_REQUEST)) | (sending & (index == 1))),
            crc.valid.eq((receiving & (count < 7)) | (sending & (index >= 1) & (index <= 5))),
        ]
        return m
