"""ECP5 board clocking: one EHXPLLL making the 125 MHz RGMII clock, its 90-degree copy and the
NIC core clock, plus resets.

``sync`` (125 MHz) clocks the RGMII transmit data (and the MACs' transmit side); ``tx90``
(125 MHz, +90 degrees, i.e. +2 ns) clocks only the RGMII TXC output register, which puts the
transmit clock edge in the middle of the data eye (the 2 ns RGMII-ID skew done in the FPGA, so
the PHY's TX delay stays off). ``core`` (optional, ``core_div``) is the VCO (625 MHz) divided by
``core_div`` on CLKOS2: the NIC core's clock (docs/boards.md says why it need not be 125 MHz).
All domains reset together until the PLL locks and the board reset is released, through a reset
synchroniser per domain.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["PLL_SETTINGS", "VCO_MHZ", "core_mhz", "Ecp5Pll", "CoreClocking"]

#: EHXPLLL settings for (input MHz) -> 125 MHz on CLKOP and 125 MHz +90 degrees on CLKOS,
#: computed with ``ecppll -i <in> -o 125 --clkout1 125 --phase1 90`` (VCO 625 MHz).
PLL_SETTINGS = {
    100.0: dict(CLKI_DIV=4, CLKFB_DIV=5, CLKOP_DIV=5, CLKOP_CPHASE=2, CLKOP_FPHASE=0,
                CLKOS_DIV=5, CLKOS_CPHASE=3, CLKOS_FPHASE=2),
    30.0: dict(CLKI_DIV=6, CLKFB_DIV=25, CLKOP_DIV=5, CLKOP_CPHASE=2, CLKOP_FPHASE=0,
               CLKOS_DIV=5, CLKOS_CPHASE=3, CLKOS_FPHASE=2),
}

CORE_MHZ = 125.0
#: Every PLL setting above runs the VCO at this frequency; CLKOS2 divides it for ``core``.
VCO_MHZ = 625.0


def core_mhz(core_div):
    """The ``core`` clock for a CLKOS2 divider (VCO 625 MHz)."""
    return VCO_MHZ / core_div


class Ecp5Pll(wiring.Component):
    """One EHXPLLL: ``clk_in`` (``in_mhz``) -> ``clk_op`` 125 MHz, ``clk_os`` 125 MHz +90 deg."""

    clk_in: In(1)
    clk_op: Out(1)
    clk_os: Out(1)
    clk_os2: Out(1)
    locked: Out(1)

    def __init__(self, in_mhz, core_div=None):
        if in_mhz not in PLL_SETTINGS:
            raise ValueError(f"no PLL settings for a {in_mhz} MHz input; known: "
                             f"{sorted(PLL_SETTINGS)} (add one computed with ecppll)")
        if core_div is not None and not 5 <= core_div <= 128:
            raise ValueError(f"core_div must be 5..128 (VCO 625 MHz / core_div), not {core_div}")
        self.in_mhz = in_mhz
        self.core_div = core_div
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        p = PLL_SETTINGS[self.in_mhz]
        os2 = {}
        if self.core_div is not None:
            # ecppll: CLKOS2 at 0 degrees has the primary's CPHASE (2 for CLKOP_DIV 5).
            os2 = dict(a_FREQUENCY_PIN_CLKOS2=f"{core_mhz(self.core_div):.4f}",
                       p_CLKOS2_ENABLE="ENABLED", p_CLKOS2_DIV=self.core_div,
                       p_CLKOS2_CPHASE=p["CLKOP_CPHASE"], p_CLKOS2_FPHASE=0,
                       o_CLKOS2=self.clk_os2)
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=str(int(self.in_mhz)),
            a_FREQUENCY_PIN_CLKOP="125", a_FREQUENCY_PIN_CLKOS="125",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p["CLKI_DIV"], p_CLKFB_DIV=p["CLKFB_DIV"], p_FEEDBK_PATH="CLKOP",
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
            p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=p["CLKOP_FPHASE"],
            p_CLKOS_ENABLE="ENABLED", p_CLKOS_DIV=p["CLKOS_DIV"],
            p_CLKOS_CPHASE=p["CLKOS_CPHASE"], p_CLKOS_FPHASE=p["CLKOS_FPHASE"],
            i_RST=0, i_STDBY=0, i_CLKI=self.clk_in, i_CLKFB=self.clk_op,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=self.clk_op, o_CLKOS=self.clk_os, o_LOCK=self.locked, **os2,
        )
        return m


class CoreClocking(Elaboratable):
    """Drives the ``sync`` and ``tx90`` domains (declared by the top) from the board oscillator.

    ``clk_in`` is the oscillator (a 1-bit signal), ``rst_in`` the board reset (active high,
    asynchronous). ``locked`` is the PLL lock, for an LED. With ``core_div`` it also drives the
    ``core`` domain (declared by the top).
    """

    def __init__(self, clk_in, rst_in, in_mhz, core_div=None, global_core_reset=False):
        self.clk_in = clk_in
        self.rst_in = rst_in
        self.core_div = core_div
        self.global_core_reset = global_core_reset
        self.pll = Ecp5Pll(in_mhz, core_div)
        self.locked = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.pll = pll = self.pll
        m.d.comb += [
            pll.clk_in.eq(self.clk_in),
            ClockSignal("sync").eq(pll.clk_op),
            ClockSignal("tx90").eq(pll.clk_os),
            self.locked.eq(pll.locked),
        ]
        arst = ~pll.locked | self.rst_in
        m.submodules.rst_sync = ResetSynchronizer(arst, domain="sync")
        m.submodules.rst_tx90 = ResetSynchronizer(arst, domain="tx90")
        if self.core_div is not None:
            m.d.comb += ClockSignal("core").eq(pll.clk_os2)
            if self.global_core_reset:
                # The core reset reaches nearly every core flip-flop (15,000 LSR pins): through
                # a DCCA nextpnr routes it on a global network instead of the general routing
                # (docs/boards.md, "ECPIX-5 NIC"). The synchroniser runs in a local copy of
                # `core` whose reset feeds the DCCA.
                m.domains.core_rst = ClockDomain("core_rst", local=True)
                m.d.comb += ClockSignal("core_rst").eq(pll.clk_os2)
                m.submodules.rst_core = ResetSynchronizer(arst, domain="core_rst")
                m.submodules.rst_core_dcc = Instance(
                    "DCCA", i_CLKI=ResetSignal("core_rst"), i_CE=1, o_CLKO=ResetSignal("core"))
            else:
                m.submodules.rst_core = ResetSynchronizer(arst, domain="core")
        # No add_clock_constraint here: nextpnr derives both PLL outputs' constraints from the
        # oscillator's (and ignores Amaranth's net-name constraints on these nets anyway).
        return m
