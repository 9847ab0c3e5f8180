"""STAND-IN datapath for the board tops, until ``hw.mac`` and ``hw.core.NicCore`` are on main.

It proves what the board flow needs proven (PLL, clock domains, RGMII pins and DDR I/O, UART
pins, LEDs, timing of every clock, the bitstream) with the least logic that still exercises
those paths. It is NOT the NIC: no MAC, no parser, no offloads, no registers.

:class:`StandInRgmii` is a minimal RGMII pad adapter (IDDRX1F/ODDRX1F through ``io.DDRBuffer``):
per port a receive byte stream in its own ``rx<n>`` domain (from the PHY's RXC) and a transmit
byte stream in ``sync``; TXC comes from the ``tx90`` domain (2 ns after the data edge).
:class:`StandInRepeater` forwards received bytes (preamble to FCS, untouched) from one port's
receive domain to another port's transmit side through an async FIFO: a bump-in-the-wire
repeater. It waits for a few bytes before starting a frame to absorb the ppm difference between
the two clocks and drops (and counts) frames on overflow.
"""

from amaranth import *
from amaranth.lib import fifo, io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["StandInRgmii", "StandInRepeater", "Stretch"]


def _sub(pins, *names):
    """The first subsignal of ``pins`` among ``names`` (``tx_ctl`` vs ``tx_ctrl`` on boards)."""
    for name in names:
        try:
            return getattr(pins, name)
        except AttributeError:
            continue
    raise AttributeError(f"RGMII resource has none of {names}")


class StandInRgmii(Elaboratable):
    """RGMII pads of one PHY (resource requested with ``dir="-"``) as GMII-like byte signals.

    ``rx_dv``/``rx_er``/``rx_data`` in domain ``rx_domain`` (declared by the top, clocked here
    from RXC),
    ``tx_en``/``tx_data`` in ``sync``. PHY reset is held for ~16 ms after ``sync`` leaves reset.
    """

    def __init__(self, pins, rx_domain):
        self.pins = pins
        self.rx_domain = rx_domain
        self.rx_dv = Signal()
        self.rx_er = Signal()
        self.rx_data = Signal(8)
        self.tx_en = Signal()
        self.tx_data = Signal(8)
        self.rx_clk = Signal()

    def elaborate(self, platform):
        m = Module()
        pins, rxd = self.pins, self.rx_domain
        m.submodules.rxc = rxc = io.Buffer("i", pins.rx_clk)
        m.d.comb += [ClockSignal(rxd).eq(rxc.i), self.rx_clk.eq(rxc.i)]
        m.submodules.rx_rst = ResetSynchronizer(ResetSignal("sync"), domain=rxd)
        # The 125 MHz constraint of RXC is in constraints/<board>.lpf (by port name).

        m.submodules.rxd = rx_data = io.DDRBuffer("i", pins.rx_data, i_domain=rxd)
        m.submodules.rxctl = rx_ctl = io.DDRBuffer("i", _sub(pins, "rx_ctl", "rx_ctrl"),
                                                   i_domain=rxd)
        m.d[rxd] += [
            self.rx_data.eq(Cat(rx_data.i[0], rx_data.i[1])),
            self.rx_dv.eq(rx_ctl.i[0]),
            self.rx_er.eq(rx_ctl.i[0] ^ rx_ctl.i[1]),
        ]

        m.submodules.txd = tx_data = io.DDRBuffer("o", pins.tx_data, o_domain="sync")
        m.submodules.txctl = tx_ctl = io.DDRBuffer("o", _sub(pins, "tx_ctl", "tx_ctrl"),
                                                   o_domain="sync")
        m.submodules.txc = txc = io.DDRBuffer("o", pins.tx_clk, o_domain="tx90")
        m.d.comb += [
            tx_data.o[0].eq(self.tx_data[:4]), tx_data.o[1].eq(self.tx_data[4:]),
            tx_ctl.o[0].eq(self.tx_en), tx_ctl.o[1].eq(self.tx_en),
            txc.o[0].eq(1), txc.o[1].eq(0),
        ]

        # PHY reset (active low on the pin; the port inverts) held ~16 ms; MDIO idle.
        m.submodules.phy_rst = phy_rst = io.Buffer("o", pins.rst)
        hold = Signal(21, init=(1 << 21) - 1)
        with m.If(hold != 0):
            m.d.sync += hold.eq(hold - 1)
        m.d.comb += phy_rst.o.eq(hold != 0)
        m.submodules.mdc = mdc = io.Buffer("o", pins.mdc)
        m.submodules.mdio = io.Buffer("io", pins.mdio)
        m.d.comb += mdc.o.eq(0)
        return m


class StandInRepeater(Elaboratable):
    """Forward frames from ``src`` (a :class:`StandInRgmii`) receive side to ``dst`` transmit side.

    An async FIFO of 64 bytes; a frame starts on the transmit side once 8 bytes are queued (or
    the frame ended), so ppm drift never underruns mid-frame. A frame that overflows the FIFO is
    cut short with ``tx_en`` dropped; ``overflows`` counts them (in ``sync``).
    """

    def __init__(self, src, dst):
        self.src = src
        self.dst = dst
        self.rx_activity = Signal()
        self.tx_activity = Signal()
        self.overflows = Signal(16)

    def elaborate(self, platform):
        m = Module()
        rxd = self.src.rx_domain
        m.submodules.fifo = q = fifo.AsyncFIFO(width=9, depth=64, r_domain="sync", w_domain=rxd)
        # Write side: byte + end-of-frame marker, written on every rx byte and on the frame's end.
        prev_dv = Signal()
        m.d[rxd] += prev_dv.eq(self.src.rx_dv)
        m.d.comb += [
            q.w_en.eq(self.src.rx_dv | prev_dv),
            q.w_data.eq(Cat(self.src.rx_data, ~self.src.rx_dv)),
            self.rx_activity.eq(self.src.rx_dv),
        ]
        lost = Signal()
        m.d[rxd] += lost.eq(q.w_en & ~q.w_rdy)

        # Read side: idle until 8 bytes (or a whole short frame) are queued, then stream.
        sending = Signal()
        eof = q.r_data[8]
        m.d.comb += q.r_en.eq(sending | (q.r_rdy & eof))
        with m.If(~sending & q.r_rdy & ~eof & (q.r_level >= 8)):
            m.d.sync += sending.eq(1)
        with m.If(sending & (~q.r_rdy | eof)):
            m.d.sync += sending.eq(0)
        m.d.sync += [
            self.dst.tx_en.eq(sending & q.r_rdy & ~eof),
            self.dst.tx_data.eq(q.r_data[:8]),
        ]
        m.d.comb += self.tx_activity.eq(self.dst.tx_en)
        m.submodules.lost_sync = lost_sync = _PulseToSync(rxd)
        m.d.comb += lost_sync.i.eq(lost)
        with m.If(lost_sync.o):
            m.d.sync += self.overflows.eq(self.overflows + 1)
        return m


class _PulseToSync(Elaboratable):
    def __init__(self, domain):
        from amaranth.lib.cdc import PulseSynchronizer
        self.ps = PulseSynchronizer(i_domain=domain, o_domain="sync")
        self.i = self.ps.i
        self.o = self.ps.o

    def elaborate(self, platform):
        m = Module()
        m.submodules.ps = self.ps
        return m


class Stretch(Elaboratable):
    """``o`` stays high for ``2**bits`` ``sync`` cycles after ``i`` (a synchronous pulse)."""

    def __init__(self, bits=22):
        self.i = Signal()
        self.o = Signal()
        self._bits = bits

    def elaborate(self, platform):
        m = Module()
        count = Signal(self._bits)
        with m.If(self.i):
            m.d.sync += count.eq(~0)
        with m.Elif(count != 0):
            m.d.sync += count.eq(count - 1)
        m.d.comb += self.o.eq(count != 0)
        return m
