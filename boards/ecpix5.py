"""LambdaConcept ECPIX-5 85F (LFE5UM5G-85F-8BG554): the second board, one RGMII port (RTL8211).

With one port the two directions share it: the NIC is configured as either the host side or the
network side of the bump in the wire (see docs/boards.md). The stand-in datapath loops the port's
received frames back out of it. 100 MHz oscillator; four RGB LEDs (used colour by colour).
"""

from amaranth_boards.ecpix5 import ECPIX585Platform

from .top import BoardSpec

__all__ = ["SPEC"]

SPEC = BoardSpec(
    name="ecpix5",
    title="LambdaConcept ECPIX-5 85F (LFE5UM5G-85F)",
    platform=ECPIX585Platform,
    osc="clk100", osc_mhz=100.0,
    rst="rst",
    eth_ports=(0,),
    led_names=("rgb_led",),
    loader_args=("-b", "ecpix5"),
    notes="one RGMII port: directions share it by configuration",
    # Its NIC routes only with the core reset on a global network (docs/boards.md, routed
    # 2026-12-02 at seed 1: every clock met).
    global_core_reset=True,
    # With RSC (NIC_PARAMS otherwise: P=4, C=64, N=8, 64 pages) it routes too and meets every
    # clock (seed 1, 2026-12-03, and again 2026-12-04 after the RSC timing changes: 57 % of
    # the 85F's logic cells, docs/boards.md).
    nic=dict(rsc=True),
    auto_nic=True,
)
