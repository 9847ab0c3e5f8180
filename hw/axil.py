"""AXI4-Lite slave in front of a simple register port.

:func:`AxiLiteSignature` is the bus as seen by the master (``Out`` = driven by the master), so a
slave declares ``bus: In(AxiLiteSignature(addr_width))``. Port names follow the AXI
specification (``awaddr``, ``wdata``, ``bresp``...), so cocotbext-axi binds to the flattened
Verilog names with the prefix ``bus_`` (``bus__awaddr``).

:class:`AxiLiteSlave` turns the bus into a :func:`RegisterPortSignature` request: one cycle of
``r_stb`` or ``w_stb`` with ``addr`` (and ``w_data``/``w_strb``), answered by ``r_data`` and
``err``: a write on the next cycle, a read ``read_latency`` cycles after ``r_stb`` (default 1,
the next cycle; :class:`hw.csr.CsrBlock` with counters in block RAM needs 3). The register side
holds ``r_data``/``err`` until its next access. ``err`` becomes SLVERR (``0b10``); the
register side guarantees that an erroring access changed nothing.

Latency: address accepted -> response valid in 3 cycles (a read: ``read_latency + 2``).
Throughput: one access per 4 cycles (a read per ``read_latency + 3``; ``r_stb`` at least that
many cycles apart) plus the master's own ready/valid delays (a control bus; nothing here is on
the datapath).
Reads and writes alternate when both are pending, so neither starves. Backpressure: the
response is held until ``rready``/``bready``. Reset: idle, no response pending.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AxiLiteSignature", "RegisterPortSignature", "AxiLiteSlave", "OKAY", "SLVERR"]

OKAY, SLVERR = 0b00, 0b10


def AxiLiteSignature(addr_width, data_width=32):
    if data_width not in (32, 64):
        raise ValueError(f"AXI4-Lite data width must be 32 or 64, not {data_width}")
    if not 2 <= addr_width <= 32:
        raise ValueError(f"AXI4-Lite address width must be 2..32, not {addr_width}")
    return wiring.Signature({
        "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1),
        "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
        "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    })


def RegisterPortSignature(addr_width, data_width=32):
    """Initiator's view of the simple register port (see module docstring)."""
    return wiring.Signature({
        "addr": Out(addr_width), "r_stb": Out(1), "w_stb": Out(1),
        "w_data": Out(data_width), "w_strb": Out(data_width // 8),
        "r_data": In(data_width), "err": In(1),
    })


class AxiLiteSlave(wiring.Component):
    """AXI4-Lite slave -> register port; see module docstring."""

    def __init__(self, addr_width, data_width=32, *, read_latency=1):
        if read_latency < 1:
            raise ValueError(f"read_latency must be at least 1, not {read_latency}")
        self.addr_width = addr_width
        self.data_width = data_width
        self.read_latency = read_latency
        super().__init__({
            "bus": In(AxiLiteSignature(addr_width, data_width)),
            "reg": Out(RegisterPortSignature(addr_width, data_width)),
        })

    def elaborate(self, platform):
        m = Module()
        bus, reg = self.bus, self.reg
        addr = Signal(self.addr_width)
        wdata = Signal(self.data_width)
        wstrb = Signal(self.data_width // 8)
        rdata = Signal(self.data_width)
        rresp = Signal(2)
        bresp = Signal(2)
        prefer_write = Signal()

        m.d.comb += [reg.addr.eq(addr), reg.w_data.eq(wdata), reg.w_strb.eq(wstrb),
                     bus.rdata.eq(rdata), bus.rresp.eq(rresp), bus.bresp.eq(bresp)]

        can_read = bus.arvalid
        can_write = bus.awvalid & bus.wvalid
        with m.FSM():
            with m.State("IDLE"):
                with m.If(can_read & ~(can_write & prefer_write)):
                    m.d.comb += bus.arready.eq(1)
                    m.d.sync += [addr.eq(bus.araddr), prefer_write.eq(1)]
                    m.next = "READ"
                with m.Elif(can_write):
                    m.d.comb += [bus.awready.eq(1), bus.wready.eq(1)]
                    m.d.sync += [addr.eq(bus.awaddr), wdata.eq(bus.wdata),
                                 wstrb.eq(bus.wstrb), prefer_write.eq(0)]
                    m.next = "WRITE"
            with m.State("READ"):
                m.d.comb += reg.r_stb.eq(1)
                m.next = "READ_WAIT1" if self.read_latency > 1 else "READ_DATA"
            for i in range(1, self.read_latency):
                with m.State(f"READ_WAIT{i}"):
                    m.next = f"READ_WAIT{i + 1}" if i + 1 < self.read_latency else "READ_DATA"
            with m.State("READ_DATA"):
                m.d.sync += [rdata.eq(Mux(reg.err, 0, reg.r_data)),
                             rresp.eq(Mux(reg.err, SLVERR, OKAY))]
                m.next = "READ_RESP"
            with m.State("READ_RESP"):
                m.d.comb += bus.rvalid.eq(1)
                with m.If(bus.rready):
                    m.next = "IDLE"
            with m.State("WRITE"):
                m.d.comb += reg.w_stb.eq(1)
                m.next = "WRITE_DATA"
            with m.State("WRITE_DATA"):
                m.d.sync += bresp.eq(Mux(reg.err, SLVERR, OKAY))
                m.next = "WRITE_RESP"
            with m.State("WRITE_RESP"):
                m.d.comb += bus.bvalid.eq(1)
                with m.If(bus.bready):
                    m.next = "IDLE"
        return m
