"""Gigabit Ethernet receive MAC on a GMII-like byte interface.

:class:`MacRx` runs in the PHY's receive clock (its ``sync`` domain; :class:`hw.mac.EthMac`
renames it). It finds the SFD, checks the FCS, length and PHY error of every frame, strips the
FCS and emits the frame one byte per beat on a stream that cannot be stalled. Whether a frame
is good is known only at its end, so the final beat carries ``abort``: the packet FIFO behind
(:class:`hw.mac.PacketFifo`) commits a frame on its last beat, or discards it when ``abort``.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .mac_tx import Crc32

__all__ = ["RX_BYTE", "RX_EVENTS", "LINK_STATUS", "MacRx"]

#: One received byte: ``abort`` is meaningful on the ``last`` beat only (discard the frame).
RX_BYTE = data.StructLayout({"data": 8, "keep": 1, "last": 1, "abort": 1})

#: Per-frame outcome pulses (exactly one per frame that got past its SFD).
RX_EVENTS = data.StructLayout({
    "good": 1,           # passed downstream (may still be dropped by the FIFO: see EthMac)
    "fcs_error": 1,      # length fine, FCS wrong
    "runt": 1,           # shorter than 64 bytes including the FCS
    "oversize": 1,       # longer than max_frame including the FCS
    "phy_error": 1,      # rx_er asserted during the frame
    "preamble_error": 1, # rx_dv frame whose preamble held something other than 0x55 before the SFD
})

#: RGMII in-band status, sampled between frames (rx_dv = rx_er = 0).
LINK_STATUS = data.StructLayout({"link": 1, "speed": 2, "duplex": 1})

_PRE = 0x55
_SFD = 0xD5


class MacRx(wiring.Component):
    """Receive MAC, GMII byte side to a 1-byte stream.

    Parameters
    ----------
    max_frame : int
        Largest frame accepted, in bytes from destination address to FCS inclusive
        (1518 standard, up to 9600 jumbo).

    Ports
    -----
    rxd, rx_dv, rx_er : In
        GMII receive byte, data valid and error, sampled on the rising edge (registered once
        inside before use).
    o : Out(stream of :data:`RX_BYTE`, always ready)
        The frame without preamble/SFD/FCS. A frame is cut short with ``last`` and ``abort``
        as soon as it is known oversize; a runt shorter than 5 bytes emits nothing.
    events : Out(:data:`RX_EVENTS`)
        One pulse per frame, in priority phy_error > oversize > runt > fcs_error > good.
    status : Out(:data:`LINK_STATUS`)
        In-band link status from rxd between frames (meaningful only if the PHY sends it).

    Latency: the byte received at cycle t leaves at t + 7 (input register, 4-byte FCS delay
    line, hold register, output register). Throughput: 1 byte per cycle, no backpressure.
    Reset: forgets any frame in progress (the FIFO behind must be reset with it).
    """

    def __init__(self, max_frame=1518):
        if not isinstance(max_frame, int) or not 64 <= max_frame <= 9600:
            raise ValueError(f"max_frame must be an integer from 64 to 9600, not {max_frame!r}")
        self.max_frame = max_frame
        super().__init__({
            "rxd": In(8), "rx_dv": In(1), "rx_er": In(1),
            "o": Out(stream.Signature(RX_BYTE, always_ready=True)),
            "events": Out(RX_EVENTS),
            "status": Out(LINK_STATUS),
        })

    def elaborate(self, platform):
        m = Module()
        rxd = Signal(8)
        dv = Signal()
        er = Signal()
        m.d.sync += [rxd.eq(self.rxd), dv.eq(self.rx_dv), er.eq(self.rx_er)]

        m.submodules.crc = fcs = Crc32()
        m.d.comb += fcs.data.eq(rxd)

        delay = Signal(32)                        # last 4 bytes received: FCS candidates
        hold = Signal(8)                          # the byte before them, not yet sent
        hold_valid = Signal()
        count = Signal(range(self.max_frame + 2))  # bytes after SFD, saturating at max+1
        phy_err = Signal()

        # Next values of the registered outputs, as whole signals (Icarus loops on slice
        # assignments under conditions, so no field of a struct is assigned on its own).
        o_valid = Signal()
        o_last = Signal()
        o_abort = Signal()
        ev = {name: Signal(name=f"ev_{name}") for name in RX_EVENTS.members}
        m.d.sync += [
            self.o.valid.eq(o_valid),
            self.o.payload.eq(Cat(hold, C(1, 1), o_last, o_abort)),
            self.events.eq(Cat(*(ev[name] for name in RX_EVENTS.members))),
        ]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(dv):
                    with m.If(rxd == _SFD):
                        m.next = "DATA"
                    with m.Elif(rxd == _PRE):
                        m.next = "PREAMBLE"
                    with m.Else():
                        m.d.comb += ev['preamble_error'].eq(1)
                        m.next = "SKIP"
                with m.Elif(~er):
                    m.d.sync += self.status.eq(rxd[:4])
                m.d.comb += fcs.start.eq(1)
                m.d.sync += [count.eq(0), hold_valid.eq(0), phy_err.eq(0)]

            with m.State("PREAMBLE"):
                m.d.comb += fcs.start.eq(1)
                with m.If(~dv):
                    m.d.comb += ev['preamble_error'].eq(1)
                    m.next = "IDLE"
                with m.Elif(rxd == _SFD):
                    m.next = "DATA"
                with m.Elif(rxd != _PRE):
                    m.d.comb += ev['preamble_error'].eq(1)
                    m.next = "SKIP"

            with m.State("DATA"):
                with m.If(dv):
                    m.d.comb += fcs.valid.eq(1)
                    m.d.sync += [
                        delay.eq(Cat(rxd, delay[:24])),
                        hold.eq(delay[24:]),
                        hold_valid.eq(count >= 4),
                        count.eq(count + 1),
                        phy_err.eq(phy_err | er),
                    ]
                    # The held byte leaves as the next byte arrives.
                    m.d.comb += o_valid.eq(hold_valid)
                    with m.If(count == self.max_frame):
                        # This byte makes the frame oversize: close it now as aborted.
                        m.d.comb += [o_last.eq(1), o_abort.eq(1)]
                        with m.If(phy_err | er):
                            m.d.comb += ev["phy_error"].eq(1)
                        with m.Else():
                            m.d.comb += ev["oversize"].eq(1)
                        m.next = "SKIP"
                with m.Else():
                    runt = count < 64
                    m.d.comb += [o_valid.eq(hold_valid), o_last.eq(1),
                                 o_abort.eq(phy_err | runt | ~fcs.match_detected)]
                    with m.If(phy_err):
                        m.d.comb += ev["phy_error"].eq(1)
                    with m.Elif(runt):
                        m.d.comb += ev["runt"].eq(1)
                    with m.Elif(~fcs.match_detected):
                        m.d.comb += ev["fcs_error"].eq(1)
                    with m.Else():
                        m.d.comb += ev["good"].eq(1)
                    m.next = "IDLE"

            with m.State("SKIP"):
                # Wait out the rest of a frame already accounted for.
                with m.If(~dv):
                    m.next = "IDLE"
        return m
