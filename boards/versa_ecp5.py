"""Lattice ECP5 Versa (LFE5UM-45F-8BG381): the default board, two RGMII ports (88E1512 PHYs).

Port 0 (J5 side, resource ``eth_rgmii`` 0) faces the host, port 1 (``eth_rgmii`` 1) faces the
network. 100 MHz oscillator; eight LEDs; the FT2232H's second channel is the UART.
"""

from amaranth_boards.versa_ecp5 import VersaECP5Platform

from .top import BoardSpec

__all__ = ["SPEC"]

SPEC = BoardSpec(
    name="versa",
    title="Lattice ECP5 Versa (LFE5UM-45F)",
    platform=VersaECP5Platform,
    osc="clk100", osc_mhz=100.0,
    rst="rst",
    eth_ports=(0, 1),
    led_names=("led",),
    loader_args=("-c", "ft2232"),   # the on-board FT2232H, channel A is JTAG
    notes="port 0 = host side, port 1 = network side",
    # The 45F's NIC for 1 GbE (docs/boards.md, "Why these parameters"): two profiles, a
    # 32-byte opaque capture (every preset's opaque header is at most 30 bytes), four RSC
    # contexts. RSC itself is still out (boards/top.py NIC_PARAMS): with it (and 32 pool
    # pages) the design takes 93 % of the TRELLIS_COMB cells, places with every clock met
    # and does not route (docs/boards.md).
    nic=dict(profiles=2, opaque_bytes=32, contexts=4),
    # This NIC (without RSC) routes and meets every clock at seed 1 (docs/boards.md), so the
    # default build (`tunnelnic build`, CI's first step) is the NIC.
    auto_nic=True,
)
