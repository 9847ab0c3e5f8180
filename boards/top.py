"""The board top level shared by every ECP5 board: clocks, RGMII ports, UART, LEDs, datapath.

A board file (``boards/versa_ecp5.py``...) gives a :class:`BoardSpec`; :class:`BoardTop` builds
the same design on any of them:

* clocking (:mod:`boards.clocking`): oscillator -> EHXPLLL -> ``sync`` 125 MHz (core and RGMII
  transmit) and ``tx90`` (RGMII TXC, +2 ns); reset synchronisers; PLL lock on an LED.
* one or two RGMII ports, requested with ``dir="-"`` (subsignal names differ between boards);
  each received clock is its own domain ``rx<n>`` with a 125 MHz constraint.
* the datapath. Two ports (Versa): port 0 faces the host, port 1 the network; frames from
  port 0 leave on port 1 and frames from port 1 leave on port 0. One port (ECPIX-5): received
  frames leave on the same port (the NIC's direction is chosen by configuration).
  ``datapath="nic"``: :class:`hw.board_nic.BoardNic`, the
  NIC core between one MAC per port, in its own ``core`` clock (:data:`NIC_PARAMS`, the PLL's
  CLKOS2), with the UART register bridge and the self-test buffers.
  ``datapath="mac"``: one ``hw.mac.EthMac`` per port (W-byte streams in ``sync``) with the
  streams cross-connected, no core (a check of the MACs alone).
  ``datapath="auto"``, the default: ``"nic"`` on a board whose NIC build is routed and meets
  every clock (``BoardSpec.auto_nic``), else ``"mac"`` (docs/boards.md).
  ``datapath="standin"``: :mod:`boards.standin`'s byte repeater, no MAC; the UART echoes.
* LEDs for PLL lock, heartbeat, per-port rx/tx activity and UART activity.
"""

from dataclasses import dataclass, field

from amaranth import *
from amaranth.build import ResourceError
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer

from .clocking import CoreClocking
from .rgmii_pads import RgmiiPads
from .standin import StandInRepeater, Stretch

__all__ = ["BoardSpec", "BoardTop", "mac_available", "NIC_PARAMS", "nic_params"]

#: The NIC on every board (docs/boards.md, "Why these parameters"): 1 GbE is 125 MB/s, so the
#: core runs W=4 bytes per beat at 625/core_div MHz (any clock above 31.25 MHz keeps line rate)
#: instead of W=8 at 125 MHz, which this toolchain cannot close for the parser.
NIC_PARAMS = dict(width=4, core_div=16, profiles=4, header_window=256, opaque_bytes=64,
                  contexts=8, pool_pages=64, tso=True, rsc=False, max_frames=(1518, 1518),
                  baud=115200, inject_bytes=2048, capture_bytes=4096, capture_frames=16)


def nic_params(spec, **overrides):
    """:data:`NIC_PARAMS` with the board's own (``spec.nic``) and then ``overrides`` applied."""
    params = dict(NIC_PARAMS)
    params.update(spec.nic)
    params.update(overrides)
    return params


def mac_available():
    """Whether ``hw.mac.EthMac`` (the MAC branch) is present in this tree."""
    try:
        from hw.mac import EthMac  # noqa: F401
    except ImportError:
        return False
    return True


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
    nic: dict = field(default_factory=dict)  # NIC_PARAMS overrides for this board
    # The board's NIC build (routed, seed 1) meets every clock, so "auto" builds it; a board
    # whose NIC has not been routed clean builds the MACs alone (CI builds the default).
    auto_nic: bool = False
    # Put the core domain's reset on a global network (a DCCA; boards/clocking.py).
    global_core_reset: bool = False
    notes: str = ""


class BoardTop(Elaboratable):
    """The TunnelNIC design on ``spec``'s board (see module docstring)."""

    def __init__(self, spec, *, datapath="auto", width=8, max_frame=1518, nic=None):
        if datapath not in ("auto", "nic", "mac", "standin"):
            raise ValueError(f"unknown datapath {datapath!r}: auto, nic, mac or standin")
        self.spec = spec
        self.datapath = datapath
        self.width = width           # datapath "mac" only
        self.max_frame = max_frame   # datapath "mac" only
        self.nic = nic_params(spec, **(nic or {}))
        self.chosen_datapath = None

    def _leds(self, m, platform):
        """Output signals of every LED (RGB LEDs colour by colour), in resource order."""
        leds = []
        for name in self.spec.led_names:
            index = 0
            while True:
                try:
                    res = platform.request(name, index, dir="-")
                except ResourceError:
                    break
                pins = [getattr(res, c) for c in ("r", "g", "b") if hasattr(res, c)] or [res]
                for k, pin in enumerate(pins):
                    buf = io.Buffer("o", pin)
                    m.submodules[f"{name}{index}_{k}"] = buf
                    leds.append(buf.o)
                index += 1
        return leds

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        m.submodules.osc = osc = io.Buffer("i", platform.request(spec.osc, 0, dir="-"))
        rst = Const(0)
        if spec.rst:
            m.submodules.rst_pin = rst_pin = io.Buffer("i", platform.request(spec.rst, 0, dir="-"))
            rst = rst_pin.i
        datapath = self.datapath
        if datapath == "auto":
            # The NIC where it has been routed clean, else the MACs alone (docs/boards.md):
            # the default build is CI's first step and must meet every constraint.
            if not mac_available():
                datapath = "standin"
            else:
                datapath = "nic" if self.spec.auto_nic else "mac"
        self.chosen_datapath = datapath
        core_div = self.nic["core_div"] if datapath == "nic" else None
        m.submodules.clocking = clocking = CoreClocking(
            osc.i, rst, spec.osc_mhz, core_div, global_core_reset=spec.global_core_reset)
        m.domains.sync = ClockDomain("sync")
        m.domains.tx90 = ClockDomain("tx90")
        if core_div is not None:
            m.domains.core = ClockDomain("core")

        tx_domain = "sync"
        if datapath in ("mac", "nic"):
            # The MAC wants its transmit domain apart from "sync": same clock, own reset.
            tx_domain = "eth_tx"
            m.domains.eth_tx = ClockDomain("eth_tx")
            m.d.comb += ClockSignal("eth_tx").eq(ClockSignal("sync"))
            m.submodules.eth_tx_rst = ResetSynchronizer(ResetSignal("sync"), domain="eth_tx")

        ports = []
        for n, res in enumerate(spec.eth_ports):
            pins = platform.request("eth_rgmii", res, dir="-")
            m.domains += ClockDomain(f"rx{n}")
            port = RgmiiPads(pins, rx_domain=f"rx{n}", tx_domain=tx_domain)
            m.submodules[f"eth{n}"] = port
            ports.append(port)

        # Port n's received frames leave on port 1-n (two ports) or on the same port (one).
        rx_act, tx_act = [], []
        uart = None
        try:
            uart = platform.request("uart", 0, dir="-")
        except ResourceError:
            pass
        uart_act = Signal()
        led_domain = "sync"
        if datapath == "nic":
            from hw.board_nic import BoardNic
            from .clocking import core_mhz
            p = dict(self.nic)
            clk_freq = int(core_mhz(p.pop("core_div")) * 1e6)
            nic = BoardNic(len(ports), clk_freq=clk_freq, **p)
            m.submodules.nic = DomainRenamer({"sync": "core"})(nic)
            for n, port in enumerate(ports):
                g = getattr(nic, f"gmii{n}")
                m.d.comb += [
                    g.rxd.eq(port.rx_data), g.rx_dv.eq(port.rx_dv), g.rx_er.eq(port.rx_er),
                    port.tx_data.eq(g.txd), port.tx_en.eq(g.tx_en), port.tx_er.eq(g.tx_er),
                ]
                rx_act.append(nic.rx_act[n])
                tx_act.append(nic.tx_act[n])
            led_domain = "core"
            if uart is not None:
                m.submodules.uart_rx = uart_rx = io.Buffer("i", uart.rx)
                m.submodules.uart_tx = uart_tx = io.Buffer("o", uart.tx)
                m.d.comb += [nic.uart_rx.eq(uart_rx.i), uart_tx.o.eq(nic.uart_tx)]
                m.submodules.uart_sync = FFSynchronizer(~uart_rx.i, uart_act)
        elif datapath == "mac":
            from hw.mac import EthMac
            macs = []
            for n, port in enumerate(ports):
                mac = EthMac(self.width, self.max_frame, rx_domain=f"rx{n}", tx_domain="eth_tx")
                m.submodules[f"mac{n}"] = mac
                m.d.comb += [
                    mac.gmii.rxd.eq(port.rx_data), mac.gmii.rx_dv.eq(port.rx_dv),
                    mac.gmii.rx_er.eq(port.rx_er),
                    port.tx_data.eq(mac.gmii.txd), port.tx_en.eq(mac.gmii.tx_en),
                    port.tx_er.eq(mac.gmii.tx_er),
                ]
                macs.append(mac)
            # STAND-IN core until hw.core.NicCore lands: the MACs' streams cross-connected.
            for n, mac in enumerate(macs):
                dst = macs[1 - n] if len(macs) == 2 else mac
                wiring.connect(m, mac.rx, dst.tx)
                rx_act.append(mac.stats.rx_good)
                tx_act.append(mac.stats.tx_frame)
        elif datapath == "standin":
            for n, port in enumerate(ports):
                dst = ports[1 - n] if len(ports) == 2 else port
                rep = StandInRepeater(port, dst)
                m.submodules[f"path{n}"] = rep
                rx_seen = Signal(name=f"rx{n}_seen")
                m.submodules[f"rx{n}_seen_sync"] = FFSynchronizer(rep.rx_activity, rx_seen)
                rx_act.append(rx_seen)
                tx_act.append(rep.tx_activity)
        else:
            raise ValueError(f"unknown datapath {datapath!r}: auto, mac or standin")

        # UART without the NIC: an echo.
        if uart is not None and datapath != "nic":
            m.submodules.uart_rx = uart_rx = io.Buffer("i", uart.rx)
            m.submodules.uart_tx = uart_tx = io.Buffer("o", uart.tx)
            m.d.comb += uart_tx.o.eq(uart_rx.i)
            m.submodules.uart_sync = FFSynchronizer(~uart_rx.i, uart_act)

        # LEDs: lock, heartbeat, per port rx and tx activity, UART activity.
        beat = Signal(27)
        m.d.sync += beat.eq(beat + 1)
        indicators = [clocking.locked, beat[-1]]
        for n in range(len(ports)):
            for kind, sig in (("rx", rx_act[n]), ("tx", tx_act[n])):
                st = DomainRenamer(led_domain)(Stretch())
                m.submodules[f"{kind}{n}_led"] = st
                m.d.comb += st.i.eq(sig)
                indicators.append(st.o)
        st = Stretch()
        m.submodules.uart_led = st
        m.d.comb += st.i.eq(uart_act)
        indicators.append(st.o)
        for led, value in zip(self._leds(m, platform), indicators):
            m.d.comb += led.eq(value)
        return m
