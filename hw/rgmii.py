"""Thin RGMII adapter for ECP5: DDR pins <-> the GMII-like byte interface of :class:`hw.mac.EthMac`.

Kept outside the simulated MAC on purpose: it is nothing but vendor DDR primitives, delay
lines and one register stage, so the MAC is tested on GMII and this file is checked by
building the bitstream.

RGMII at 1 Gb/s: 125 MHz clocks, 4 data bits and a control bit on both edges. Rising edge:
``rxd[3:0]`` and ``rx_dv``; falling edge: ``rxd[7:4]`` and ``rx_dv ^ rx_er`` (same on TX).
The standard (RGMII v2.0) wants the clock 1.5-2 ns after the data at the receiver; either the
PHY adds it (RGMII-ID modes, configured by strapping or MDIO) or this adapter does, with a
DELAYG on the RX data/control inputs and on the forwarded TX clock.
"""

from amaranth import *
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from .mac import GmiiSignature

__all__ = ["RgmiiAdapter", "RgmiiModelAdapter", "delay_taps"]

#: ECP5 DELAYG step, nominal (Lattice TN1265: about 25 ps per tap, 127 taps).
DELAY_STEP_NS = 0.025


def delay_taps(ns):
    """DELAYG ``DEL_VALUE`` for a delay of ``ns`` nanoseconds (0 to 3.175)."""
    taps = round(ns / DELAY_STEP_NS)
    if not 0 <= taps <= 127:
        raise ValueError(f"DELAYG reaches 0 to {127 * DELAY_STEP_NS} ns, not {ns} ns")
    return taps


def _delay(m, name, value, taps):
    """``value`` through a DELAYG of ``taps`` steps (or straight through when 0)."""
    if taps == 0:
        return value
    out = Signal(len(value), name=f"{name}_dly")
    for k in range(len(value)):
        m.submodules[f"{name}_dly{k}"] = Instance(
            "DELAYG", p_DEL_MODE="USER_DEFINED", p_DEL_VALUE=taps, i_A=value[k], o_Z=out[k])
    return out


def _ctl(pins, side):
    """The control pin: ``tx_ctl``/``rx_ctl``, or ``tx_ctrl``/``rx_ctrl`` (Versa ECP5 PHY 1)."""
    for name in (f"{side}_ctl", f"{side}_ctrl"):
        if hasattr(pins, name):
            return getattr(pins, name)
    raise ValueError(f"RGMII pins lack {side}_ctl (or {side}_ctrl)")


class RgmiiAdapter(wiring.Component):
    """ECP5 RGMII pins to a GMII-like byte interface, for one PHY.

    Parameters
    ----------
    pins
        The PHY's RGMII resource requested with ``dir="-"`` (raw ports): ``rx_clk``,
        ``rx_ctl`` (or ``rx_ctrl``), ``rx_data`` (4), ``tx_clk``, ``tx_ctl`` (or ``tx_ctrl``),
        ``tx_data`` (4).
    rx_domain : str
        Clock domain this adapter **creates**, clocked by ``rx_clk`` (through a global
        buffer); its reset is ``tx_domain``'s reset, synchronized.
    tx_domain : str
        Existing 125 MHz domain (from a PLL) that clocks the transmit side; it is forwarded
        to ``tx_clk`` by an ODDRX1F (1 then 0).
    rx_delay_ns, tx_delay_ns : float
        Extra delay on RX data/control (so the clock edge lands mid-eye) and on the
        forwarded TX clock. 0 when the PHY adds its own internal delays (RGMII-ID).

    Ports
    -----
    gmii : In(:func:`hw.mac.GmiiSignature`)
        Connect to ``EthMac.gmii`` with ``wiring.connect``: ``rxd``/``rx_dv``/``rx_er``
        are registered in ``rx_domain``; ``txd``/``tx_en``/``tx_er`` are sampled in
        ``tx_domain`` by the output DDR registers.

    Latency: RX 2 ``rx_domain`` cycles (IDDR, then a register), TX 1 cycle (ODDR).
    """

    def __init__(self, pins, *, rx_domain="eth_rx", tx_domain="eth_tx", rx_delay_ns=2.0,
                 tx_delay_ns=2.0):
        for name in ("rx_clk", "rx_data", "tx_clk", "tx_data"):
            if not hasattr(pins, name):
                raise ValueError(f"RGMII pins lack {name!r}")
        self.rx_ctl = _ctl(pins, "rx")
        self.tx_ctl = _ctl(pins, "tx")
        self.pins = pins
        self.rx_domain = rx_domain
        self.tx_domain = tx_domain
        self.rx_taps = delay_taps(rx_delay_ns)
        self.tx_taps = delay_taps(tx_delay_ns)
        super().__init__({"gmii": In(GmiiSignature())})

    def elaborate(self, platform):
        m = Module()
        pins = self.pins
        rx, tx = self.rx_domain, self.tx_domain

        # Receive clock and domain.
        m.domains += ClockDomain(rx)
        m.submodules.rx_clk_buf = rx_clk = io.Buffer("i", pins.rx_clk)
        m.d.comb += ClockSignal(rx).eq(rx_clk.i)
        m.submodules.rx_rst = ResetSynchronizer(ResetSignal(tx), domain=rx)

        # Receive data: pad -> DELAYG -> IDDRX1F (Q0 rising-edge half, Q1 falling-edge half).
        m.submodules.rxd_buf = rxd_buf = io.Buffer("i", pins.rx_data)
        m.submodules.rxc_buf = rxc_buf = io.Buffer("i", self.rx_ctl)
        rx_in = _delay(m, "rx", Cat(rxd_buf.i, rxc_buf.i), self.rx_taps)
        q0 = Signal(5)
        q1 = Signal(5)
        for k in range(5):
            m.submodules[f"rx_iddr{k}"] = Instance(
                "IDDRX1F", i_D=rx_in[k], i_SCLK=ClockSignal(rx), i_RST=0,
                o_Q0=q0[k], o_Q1=q1[k])
        m.d[rx] += [
            self.gmii.rxd.eq(Cat(q0[:4], q1[:4])),
            self.gmii.rx_dv.eq(q0[4]),
            self.gmii.rx_er.eq(q0[4] ^ q1[4]),
        ]

        # Transmit: ODDRX1F (D0 first half = low nibble/tx_en, D1 = high nibble/en^er).
        d0 = Cat(self.gmii.txd[:4], self.gmii.tx_en)
        d1 = Cat(self.gmii.txd[4:], self.gmii.tx_en ^ self.gmii.tx_er)
        tx_q = Signal(5)
        for k in range(5):
            m.submodules[f"tx_oddr{k}"] = Instance(
                "ODDRX1F", i_D0=d0[k], i_D1=d1[k], i_SCLK=ClockSignal(tx), i_RST=0,
                o_Q=tx_q[k])
        m.submodules.txd_buf = txd_buf = io.Buffer("o", pins.tx_data)
        m.submodules.txc_buf = txc_buf = io.Buffer("o", self.tx_ctl)
        m.d.comb += [txd_buf.o.eq(tx_q[:4]), txc_buf.o.eq(tx_q[4])]

        # Forwarded transmit clock, delayed so its edges sit in the middle of the data eye.
        clk_q = Signal()
        m.submodules.tx_clk_oddr = Instance(
            "ODDRX1F", i_D0=1, i_D1=0, i_SCLK=ClockSignal(tx), i_RST=0, o_Q=clk_q)
        m.submodules.tx_clk_buf = tx_clk_buf = io.Buffer("o", pins.tx_clk)
        m.d.comb += tx_clk_buf.o.eq(_delay(m, "tx_clk", clk_q, self.tx_taps))
        return m


class RgmiiModelAdapter(wiring.Component):
    """Behavioural twin of :class:`RgmiiAdapter` for simulation (no vendor primitives).

    Same nibble and control encoding, with plain ports instead of pads: ``rx_clk``,
    ``rx_ctl``, ``rxd`` (4) in; ``tx_clk``, ``tx_ctl``, ``txd`` (4) out. The receive halves
    are captured by a rising-edge and a falling-edge register (the IDDRX1F), the transmit
    halves are registered on the rising edge and multiplexed by the clock level (the ODDRX1F);
    ``tx_clk`` is the unshifted ``tx_domain`` clock: the bench delays it like the DELAYG would.
    Creates ``rx_domain`` from ``rx_clk`` like the real adapter.

    This checks the RGMII encoding against cocotbext-eth's ``RgmiiPhy``; it does not check the
    ECP5 primitives, their polarity or the board skews (that is for the hardware).
    """

    def __init__(self, *, rx_domain="eth_rx", tx_domain="eth_tx"):
        self.rx_domain = rx_domain
        self.tx_domain = tx_domain
        super().__init__({
            "gmii": In(GmiiSignature()),
            "rx_clk": In(1), "rx_ctl": In(1), "rxd": In(4),
            "tx_clk": Out(1), "tx_ctl": Out(1), "txd": Out(4),
        })

    def elaborate(self, platform):
        m = Module()
        rx, tx = self.rx_domain, self.tx_domain
        fall = f"{rx}_fall"
        m.domains += ClockDomain(rx)
        m.domains += ClockDomain(fall, clk_edge="neg", reset_less=True, local=True)
        m.d.comb += [ClockSignal(rx).eq(self.rx_clk), ClockSignal(fall).eq(self.rx_clk)]
        m.submodules.rx_rst = ResetSynchronizer(ResetSignal(tx), domain=rx)

        rise_half = Signal(5)
        fall_half = Signal(5)
        m.d[rx] += rise_half.eq(Cat(self.rxd, self.rx_ctl))
        m.d[fall] += fall_half.eq(Cat(self.rxd, self.rx_ctl))
        m.d[rx] += [
            self.gmii.rxd.eq(Cat(rise_half[:4], fall_half[:4])),
            self.gmii.rx_dv.eq(rise_half[4]),
            self.gmii.rx_er.eq(rise_half[4] ^ fall_half[4]),
        ]

        first = Signal(5)
        second = Signal(5)
        m.d[tx] += [
            first.eq(Cat(self.gmii.txd[:4], self.gmii.tx_en)),
            second.eq(Cat(self.gmii.txd[4:], self.gmii.tx_en ^ self.gmii.tx_er)),
        ]
        out = Signal(5)
        m.d.comb += [
            out.eq(Mux(ClockSignal(tx), first, second)),
            self.txd.eq(out[:4]),
            self.tx_ctl.eq(out[4]),
            self.tx_clk.eq(ClockSignal(tx)),
        ]
        return m
