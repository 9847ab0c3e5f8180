"""Gigabit Ethernet transmit MAC on a GMII-like byte interface.

:class:`MacTx` runs in the transmit clock (its ``sync`` domain; :class:`hw.mac.EthMac` renames
it). It frames each packet of its 1-byte input stream: 7 preamble bytes and the SFD, the
packet, zero padding up to 60 bytes, the CRC-32 FCS, then at least 12 idle bytes.
"""

from amaranth import *
from amaranth.lib import crc, data, wiring
from amaranth.lib.wiring import In, Out

from .width import ByteSignature

__all__ = ["TX_EVENTS", "MacTx", "Crc32", "IFG_BYTES", "MIN_PAYLOAD"]

#: Per-frame outcome pulses.
TX_EVENTS = data.StructLayout({
    "frame": 1,      # a frame went out whole
    "underrun": 1,   # the input ran dry mid-frame: the frame went out with tx_er and was cut
})

IFG_BYTES = 12
MIN_PAYLOAD = 60  # bytes before the FCS


def _crc32_step(state, byte):
    """One byte of the reflected CRC-32 (IEEE 802.3) register update: the Python model."""
    state ^= byte
    for _ in range(8):
        state = (state >> 1) ^ (0xEDB88320 if state & 1 else 0)
    return state


def _crc32_matrix():
    """For each next-state bit, the (state bits, data bits) it is the XOR of (GF(2) linear)."""
    rows = []
    for i in range(32):
        srcs = [j for j in range(32) if _crc32_step(1 << j, 0) >> i & 1]
        dats = [k for k in range(8) if _crc32_step(0, 1 << k) >> i & 1]
        rows.append((srcs, dats))
    return rows


# The model must agree with Amaranth's catalogue CRC (and so with zlib) or nothing else matters.
_check = 0xFFFFFFFF
for _b in b"123456789":
    _check = _crc32_step(_check, _b)
assert _check ^ 0xFFFFFFFF == crc.catalog.CRC32_ETHERNET(8).compute(b"123456789")
del _check, _b


class Crc32(wiring.Component):
    """Ethernet FCS (CRC-32, the catalogue's ``CRC32_ETHERNET``) over one byte per cycle.

    Same behaviour as :class:`amaranth.lib.crc.Processor` for ``CRC32_ETHERNET(8)`` (``start``,
    ``valid``, ``data``; ``crc`` = FCS of the bytes so far, sent LSB first; ``match_detected``
    when the bytes so far end with their own correct FCS), but its register is updated as one
    whole signal: the catalogue Processor assigns bit by bit, which Icarus, given the
    ``always_comb`` the cocotb harness emits, re-evaluates forever.

    Latency 1 cycle, 1 byte per cycle. Reset: initial value (all ones).
    """

    RESIDUE = 0xDEBB20E3

    start: In(1)
    valid: In(1)
    data: In(8)
    crc: Out(32)
    match_detected: Out(1)

    def elaborate(self, platform):
        m = Module()
        reg = Signal(32, init=0xFFFFFFFF)
        src = Mux(self.start, C(0xFFFFFFFF, 32), reg)
        bits = []
        for srcs, dats in _crc32_matrix():
            terms = [src[j] for j in srcs] + [self.data[k] for k in dats]
            acc = terms[0]
            for t in terms[1:]:
                acc = acc ^ t
            bits.append(acc)
        with m.If(self.valid):
            m.d.sync += reg.eq(Cat(*bits))
        with m.Elif(self.start):
            m.d.sync += reg.eq(0xFFFFFFFF)
        m.d.comb += [self.crc.eq(~reg), self.match_detected.eq(reg == self.RESIDUE)]
        return m


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
        m.submodules.crc = fcs = Crc32()

        txd = Signal(8)
        en = Signal()
        er = Signal()
        m.d.sync += [self.txd.eq(txd), self.tx_en.eq(en), self.tx_er.eq(er)]
        ev_frame = Signal()
        ev_underrun = Signal()
        m.d.sync += self.events.eq(Cat(ev_frame, ev_underrun))

        cnt = Signal(range(MIN_PAYLOAD + 1))   # preamble index, then payload length (saturating)
        # The CRC takes the input byte itself (zero while padding), not the multiplexed txd:
        # behind EthMac's narrower that byte is a flip-flop, so the transmit side's longest
        # path (into the CRC register) is one padding gate and the CRC's XOR tree.
        m.d.comb += fcs.data.eq(self.i.p.data)

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
                    m.d.comb += ev_underrun.eq(1)
                    m.next = "DRAIN"

            with m.State("PAD"):
                m.d.comb += [en.eq(1), txd.eq(0), fcs.data.eq(0), fcs.valid.eq(1)]
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == MIN_PAYLOAD - 1):
                    m.d.sync += cnt.eq(0)
                    m.next = "FCS"

            with m.State("FCS"):
                m.d.comb += [en.eq(1), txd.eq(fcs.crc.word_select(cnt[:2], 8))]
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == 3):
                    m.d.sync += cnt.eq(0)
                    m.d.comb += ev_frame.eq(1)
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
