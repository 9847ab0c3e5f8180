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
)
