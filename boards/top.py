"""The board top level shared by every ECP5 board: clocks, RGMII ports, UART, LEDs, datapath.

A board file (``boards/versa_ecp5.py``...) gives a :class:`BoardSpec`; :class:`BoardTop` builds
the same design on any of them:

* clocking (:mod:`boards.clocking`): oscillator -> EHXPLLL -> ``sync`` 125 MHz (core and RGMII
  transmit) and ``tx90`` (RGMII TXC, +2 ns); reset synchronisers; PLL lock on an LED.
* one or two RGMII ports, requested with ``dir="-"`` (subsignal names differ between boards);
  each received clock is its own domain ``rx<n>`` with a 125 MHz constraint.
* the datapath. Two ports (Versa): port 0 faces the host, port 1 the network; frames from
  port 0 leave on port 1 and frames from port 1 leave on port 0. One port (ECPIX-5, ButterStick):
  received frames leave on the same port (the NIC's direction is chosen by configuration).
  Until ``hw.mac`` and ``hw.core.NicCore`` are on main this is :mod:`boards.standin`'s repeater.
* UART pins (stand-in: echo) and LEDs for PLL lock, heartbeat and per-port rx/tx activity.
"""

from dataclasses import dataclass, field

from amaranth import *
from amaranth.lib.cdc import FFSynchronizer

from .clocking import CoreClocking
from .standin import StandInRepeater, StandInRgmii, Stretch

__all__ = ["BoardSpec", "BoardTop"]


@dataclass(frozen=True)
class BoardSpec:
    """What differs between boards."""
    name: str                       # short name used by `tunnelnic build --board`
    title: str
    platform: type                  # an amaranth-boards LatticeECP5Platform subclass
    osc: str                        # oscillator resource name
    osc_mhz: float
    rst: str | None                 # board reset button resource (active high after request)
    eth_ports: tuple = (0,)         # eth_rgmii resource numbers, port 0 first
    led_names: tuple = ("led",)     # resources providing LEDs, in order of use
    loader_args: tuple = ("-c", "ft2232")  # openFPGALoader cable/board selection
    platform_kwargs: dict = field(default_factory=dict)
    notes: str = ""


class BoardTop(Elaboratable):
    """The TunnelNIC design on ``spec``'s board (see module docstring)."""

    def __init__(self, spec):
        self.spec = spec

    def _leds(self, platform):
        leds = []
        for name in self.spec.led_names:
            index = 0
            while True:
                try:
                    res = platform.request(name, index)
                except Exception:
                    break
                if hasattr(res, "o"):
                    leds.append(res.o)
                else:  # an RGB LED: use its colour pins one by one
                    leds.extend(getattr(res, c).o for c in ("r", "g", "b") if hasattr(res, c))
                index += 1
        return leds

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        osc = platform.request(spec.osc, 0)
        rst = platform.request(spec.rst, 0).i if spec.rst else Const(0)
        m.submodules.clocking = clocking = CoreClocking(osc.i, rst, spec.osc_mhz)
        m.domains.sync = ClockDomain("sync")
        m.domains.tx90 = ClockDomain("tx90")

        ports = []
        for n, res in enumerate(spec.eth_ports):
            pins = platform.request("eth_rgmii", res, dir="-")
            m.domains += ClockDomain(f"rx{n}")
            port = StandInRgmii(pins, rx_domain=f"rx{n}")
            m.submodules[f"eth{n}"] = port
            ports.append(port)

        # Datapath (stand-in): port 0 <-> port 1 on two-port boards, loopback on one-port boards.
        paths = []
        for n, port in enumerate(ports):
            dst = ports[1 - n] if len(ports) == 2 else port
            rep = StandInRepeater(port, dst)
            m.submodules[f"path{n}"] = rep
            paths.append(rep)

        # UART (stand-in: echo; the regmap branch's UART bridge goes here).
        try:
            uart = platform.request("uart", 0)
        except Exception:
            uart = None
        uart_act = Signal()
        if uart is not None:
            m.d.comb += uart.tx.o.eq(uart.rx.i)
            m.submodules.uart_sync = FFSynchronizer(~uart.rx.i, uart_act)

        # LEDs: lock, heartbeat, per port rx and tx activity, UART activity.
        beat = Signal(27)
        m.d.sync += beat.eq(beat + 1)
        indicators = [clocking.locked, beat[-1]]
        for n, rep in enumerate(paths):
            rx_seen = Signal(name=f"rx{n}_seen")
            m.submodules[f"rx{n}_seen_sync"] = FFSynchronizer(rep.rx_activity, rx_seen)
            for kind, sig in (("rx", rx_seen), ("tx", rep.tx_activity)):
                st = Stretch()
                m.submodules[f"{kind}{n}_led"] = st
                m.d.comb += st.i.eq(sig)
                indicators.append(st.o)
        st = Stretch()
        m.submodules.uart_led = st
        m.d.comb += st.i.eq(uart_act)
        indicators.append(st.o)
        for led, value in zip(self._leds(platform), indicators):
            m.d.comb += led.eq(value)
        return m
