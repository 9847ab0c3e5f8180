"""The RGMII pads of one PHY as GMII-like byte signals, for the board tops.

A thin adapter around the ECP5 DDR I/O registers (``io.DDRBuffer`` becomes IDDRX1F/ODDRX1F in
the I/O cells): receive data and control captured on both edges of the PHY's RXC, transmit data
and control launched on both edges of the 125 MHz core clock, and TXC launched from the ``tx90``
domain (the same 125 MHz shifted by 2 ns, so the clock edge sits in the middle of the data eye;
the PHY's transmit delay stays off). The PHY provides the receive delay (see
constraints/README.md). Resources are requested with ``dir="-"``; control pins are ``tx_ctl``/
``rx_ctl`` on some boards and ``tx_ctrl``/``rx_ctrl`` on others, both are accepted.
"""

from amaranth import *
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["RgmiiPads"]


def _sub(pins, *names):
    """The first subsignal of ``pins`` among ``names`` (``tx_ctl`` vs ``tx_ctrl`` on boards)."""
    for name in names:
        try:
            return getattr(pins, name)
        except AttributeError:
            continue
    raise AttributeError(f"RGMII resource has none of {names}")


class RgmiiPads(Elaboratable):
    """RGMII pads of one PHY (resource requested with ``dir="-"``) as GMII-like byte signals.

    ``rx_dv``/``rx_er``/``rx_data`` in domain ``rx_domain`` (declared by the top, clocked here
    from RXC), ``tx_en``/``tx_er``/``tx_data`` in ``tx_domain`` (clocked by ``sync``'s clock);
    TXC from ``tx90``. PHY reset is held for ~16 ms after ``sync`` leaves reset.
    """

    def __init__(self, pins, rx_domain, tx_domain="sync"):
        self.pins = pins
        self.rx_domain = rx_domain
        self.tx_domain = tx_domain
        self.rx_dv = Signal()
        self.rx_er = Signal()
        self.rx_data = Signal(8)
        self.tx_en = Signal()
        self.tx_er = Signal()
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

        m.submodules.txd = tx_data = io.DDRBuffer("o", pins.tx_data, o_domain=self.tx_domain)
        m.submodules.txctl = tx_ctl = io.DDRBuffer("o", _sub(pins, "tx_ctl", "tx_ctrl"),
                                                   o_domain=self.tx_domain)
        m.submodules.txc = txc = io.DDRBuffer("o", pins.tx_clk, o_domain="tx90")
        m.d.comb += [
            tx_data.o[0].eq(self.tx_data[:4]), tx_data.o[1].eq(self.tx_data[4:]),
            tx_ctl.o[0].eq(self.tx_en), tx_ctl.o[1].eq(self.tx_en ^ self.tx_er),
            txc.o[0].eq(1), txc.o[1].eq(0),
        ]

        # PHY reset (active low on the pin; the port inverts) held ~16 ms; MDIO idle.
        # The counter runs until its top bit sets (2**21 cycles): that bit alone is the count
        # enable and, through a register, the pin. A ``hold != 0`` reduction over 21 bits was
        # the board's worst ``sync`` path (its flip-flops spread towards the pin).
        m.submodules.phy_rst = phy_rst = io.Buffer("o", pins.rst)
        hold = Signal(22)
        rst_out = Signal(init=1)
        with m.If(~hold[-1]):
            m.d.sync += hold.eq(hold + 1)
        m.d.sync += rst_out.eq(~hold[-1])
        m.d.comb += phy_rst.o.eq(rst_out)
        m.submodules.mdc = mdc = io.Buffer("o", pins.mdc)
        m.submodules.mdio = io.Buffer("io", pins.mdio)
        m.d.comb += mdc.o.eq(0)
        return m
