"""Gigabit Ethernet transmit MAC on a GMII-like byte interface.

:class:`MacTx` runs in the transmit clock (its ``sync`` domain; :class:`hw.mac.EthMac` renames
it). It frames each packet of its 1-byte input stream: 7 preamble bytes and the SFD, the
packet, zero padding up to 60 bytes, the CRC-32 FCS, then at least 12 idle bytes.
"""

from amaranth import *
from amaranth.lib import crc, data, wiring
from amaranth.lib.wiring import In, Out

from .width import ByteSignature

__all__ = ["TX_EVENTS", "MacTx", "IFG_BYTES", "MIN_PAYLOAD"]

#: Per-frame outcome pulses.
TX_EVENTS = data.StructLayout({
    "frame": 1,      # a frame went out whole
    "underrun": 1,   # the input ran dry mid-frame: the frame went out with tx_er and was cut
})

IFG_BYTES = 12
MIN_PAYLOAD = 60  # bytes before the FCS


class MacTx(wiring.Component):
    """Transmit MAC, 1-byte packet stream to GMII.

    Ports
    -----
    i : In(:func:`hw.stream.PacketSignature` (1))
        Frames from destination address to the end of the payload (no FCS). Once a frame has
        started, ``i`` must present a byte every cycle until ``last`` (feed it from a
        store-and-forward FIFO, as :class:`hw.mac.EthMac` does); otherwise the frame is ended
        with ``tx_er`` (the receiver drops it), the rest of the packet is discarded and
        ``events.underrun`` pulses.
    txd, tx_en, tx_er : Out
        GMII transmit byte, enable and error, registered.
    events : Out(:data:`TX_EVENTS`)

    Latency: the first preamble byte leaves 2 cycles after ``i.valid`` rises (when the
    inter-frame gap is over). Throughput: line rate, 1 byte per cycle; consecutive frames are
    separated by exactly 12 idle cycles when the next frame is waiting. ``i.ready`` is high
    only while frame bytes are being sent. Reset: idle, any frame in progress is cut.
    """

    def __init__(self):
        super().__init__({
            "i": In(ByteSignature()),
            "txd": Out(8), "tx_en": Out(1), "tx_er": Out(1),
            "events": Out(TX_EVENTS),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = fcs = crc.catalog.CRC32_ETHERNET(8).create()

        txd = Signal(8)
        en = Signal()
        er = Signal()
        m.d.sync += [self.txd.eq(txd), self.tx_en.eq(en), self.tx_er.eq(er)]
        m.d.sync += self.events.eq(0)

        cnt = Signal(range(MIN_PAYLOAD + 1))   # preamble index, then payload length (saturating)
        m.d.comb += fcs.data.eq(txd)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += fcs.start.eq(1)
                m.d.sync += cnt.eq(0)
                with m.If(self.i.valid):
                    m.next = "PREAMBLE"

            with m.State("PREAMBLE"):
                m.d.comb += [en.eq(1), txd.eq(Mux(cnt == 7, 0xD5, 0x55))]
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == 7):
                    m.d.sync += cnt.eq(0)
                    m.next = "DATA"

            with m.State("DATA"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.comb += [en.eq(1), txd.eq(self.i.p.data), fcs.valid.eq(1)]
                    with m.If(cnt != MIN_PAYLOAD):
                        m.d.sync += cnt.eq(cnt + 1)
                    with m.If(self.i.p.last):
                        with m.If(cnt >= MIN_PAYLOAD - 1):
                            m.d.sync += cnt.eq(0)
                            m.next = "FCS"
                        with m.Else():
                            m.next = "PAD"
                with m.Else():
                    m.d.comb += [en.eq(1), er.eq(1)]
                    m.d.sync += self.events.underrun.eq(1)
                    m.next = "DRAIN"

            with m.State("PAD"):
                m.d.comb += [en.eq(1), txd.eq(0), fcs.valid.eq(1)]
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == MIN_PAYLOAD - 1):
                    m.d.sync += cnt.eq(0)
                    m.next = "FCS"

            with m.State("FCS"):
                m.d.comb += [en.eq(1), txd.eq(fcs.crc.word_select(cnt[:2], 8))]
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == 3):
                    m.d.sync += [cnt.eq(0), self.events.frame.eq(1)]
                    m.next = "IFG"

            with m.State("DRAIN"):
                # Discard what is left of an underrun frame.
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid & self.i.p.last):
                    m.d.sync += cnt.eq(0)
                    m.next = "IFG"

            with m.State("IFG"):
                # 11 cycles here plus the IDLE cycle: 12 idle bytes on the wire.
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == IFG_BYTES - 2):
                    m.next = "IDLE"
        return m
