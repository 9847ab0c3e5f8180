"""The Ethernet MAC as the core sees it: W-byte packet streams in the core clock.

:class:`EthMac` assembles, per direction::

    RX  GMII (eth_rx) -> MacRx -> PacketFifo (drop-at-end) -> StreamWidener -> SkidBuffer
        -> AsyncStreamFifo -> rx (W bytes, sync)
    TX  tx (W bytes, sync) -> AsyncStreamFifo -> SkidBuffer -> PacketFifo (W bytes, store and
        forward) -> StreamNarrower -> MacTx -> GMII (eth_tx)

:class:`PacketFifo` is the frame FIFO with commit on a frame's last beat: the RX side
never shows a bad or overflowed frame downstream, the TX side never starts a frame it cannot
finish at line rate.
"""

from amaranth import *
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .buffer import SkidBuffer
from .cdc import AsyncStreamFifo, LevelCrossing, PulseCrossing
from .mac_rx import LINK_STATUS, RX_BYTE, MacRx
from .mac_tx import MacTx
from .stream import PacketSignature, check_width, keep_count, packet_layout
from .width import ByteSignature, StreamNarrower, StreamWidener

__all__ = ["PacketFifo", "frame_layout", "EthMac", "MAC_STATS", "GmiiSignature"]


#: Per-cycle increments in the core (``sync``) domain, one pulse per frame and outcome.
MAC_STATS = data.StructLayout({
    "rx_good": 1,           # frame delivered to the core (FCS stripped)
    "rx_fcs_error": 1,      # dropped: FCS mismatch
    "rx_runt": 1,           # dropped: shorter than 64 bytes with FCS
    "rx_oversize": 1,       # dropped: longer than max_frame with FCS
    "rx_phy_error": 1,      # dropped: rx_er during the frame
    "rx_preamble_error": 1, # dropped: bad preamble before the SFD
    "rx_fifo_drop": 1,      # dropped whole: good frame, but the core fell behind (RX FIFO full)
    "tx_frame": 1,          # frame sent
    "tx_oversize": 1,       # dropped whole: longer than max_frame - 4 (or the TX FIFO)
    "tx_underrun": 1,       # frame cut with tx_er (cannot happen behind the TX FIFO)
})


def GmiiSignature():
    """GMII-like byte interface, seen from the MAC: rx* in, tx* out."""
    return wiring.Signature({
        "rxd": In(8), "rx_dv": In(1), "rx_er": In(1),
        "txd": Out(8), "tx_en": Out(1), "tx_er": Out(1),
    })


def _pow2_at_least(n):
    return 1 << max(n - 1, 1).bit_length()


def frame_layout(width):
    """Input of :class:`PacketFifo`: a packet beat plus ``abort`` (on the last beat: discard)."""
    return data.StructLayout({"data": 8 * width, "keep": width, "last": 1, "abort": 1})


class PacketFifo(wiring.Component):
    """Frame FIFO in block RAM that commits a frame at its last beat.

    Frames become visible on ``o`` only once their last beat is stored. A frame is discarded
    whole (write pointer rewound) when its last beat carries ``abort``, when it is longer than
    ``max_len`` bytes, or, with ``backpressure=False``, when the FIFO fills while it is written.

    Parameters
    ----------
    depth : int
        Entries (beats of ``width`` bytes), a power of two.
    max_len : int
        Longest frame stored, in bytes, at most ``depth * width`` (``(depth - 1) * width``
        with ``backpressure``, so that a frame alone never fills the FIFO); longer frames are
        discarded (``too_long``).
    backpressure : bool
        ``False`` (receive side): ``i.ready`` is always high and a frame that does not fit is
        discarded (``overflow``). ``True`` (transmit side): ``i.ready`` falls while the FIFO
        is full of other frames; only a frame too long for the FIFO is discarded. ``i.ready``
        then comes from flip-flops (a registered full flag), so the writer's logic behind it
        (an async FIFO's read pointer) does not add to the pointer arithmetic here.
    width : int
        Bytes per beat: 1 (``i`` is :data:`hw.mac_rx.RX_BYTE`, ``o`` a byte stream) or a core
        width (``i`` is :func:`frame_layout`, ``o`` a :func:`hw.stream.PacketSignature`).

    Ports: ``i``, ``o``, ``overflow`` and ``too_long`` (one pulse per discarded frame, the
    cycle after its last beat; a frame discarded for ``abort`` is the writer's to count).

    Latency: a frame's first beat can leave 4 cycles after its last beat was written (store
    and forward; the block RAM's read data is registered once more before ``o``). Throughput
    1 beat per cycle on each side. Reset: empties the FIFO.
    """

    def __init__(self, depth, max_len=None, *, backpressure, width=1):
        if depth < 4 or depth & (depth - 1):
            raise ValueError(f"PacketFifo depth must be a power of two >= 4, not {depth}")
        if width != 1:
            check_width(width)
        room = (depth - 1 if backpressure else depth) * width
        max_len = room if max_len is None else max_len
        if not 1 <= max_len <= room:
            raise ValueError(f"max_len must be from 1 to {room} bytes, not {max_len}")
        self.depth = depth
        self.max_len = max_len
        self.backpressure = backpressure
        self.width = width
        super().__init__({
            "i": In(stream.Signature(RX_BYTE if width == 1 else frame_layout(width))),
            "o": Out(ByteSignature() if width == 1 else PacketSignature(width)),
            "overflow": Out(1),
            "too_long": Out(1),
        })

    def elaborate(self, platform):
        # Whole-signal assignments only (see hw/width.py).
        m = Module()
        w = self.width
        abits = (self.depth - 1).bit_length()
        entry = 9 if w == 1 else 9 * w + 1
        m.submodules.mem = mem = memory.Memory(shape=entry, depth=self.depth, init=[])
        wr = mem.write_port()
        rd = mem.read_port()

        wptr = Signal(abits + 1)       # next write (speculative, within the current frame)
        wcommit = Signal(abits + 1)    # end of the last committed frame
        wcommit_r = Signal(abits + 1)  # delayed: committed entries are 2 cycles old when read
        rptr = Signal(abits + 1)       # next entry to fetch
        # Bytes the current frame may still store (max_len minus those stored), and whether
        # that is at least a whole beat: then no beat can make the frame too long, and
        # ``too_long`` needs no adder in front of ``store`` (which drives the write enable,
        # the pointers and the ready of the async FIFO in front), only a compare of a few
        # bits. Both are registered; their next values are computed beside ``store``.
        rem = Signal(range(self.max_len + 1), init=self.max_len)
        roomy = Signal(init=self.max_len >= w)
        dropping = Signal()            # the current frame is being discarded

        full = Signal()
        used = Signal(abits + 1)
        m.d.comb += used.eq(wptr - rptr)
        m.d.sync += wcommit_r.eq(wcommit)
        nbytes = 1 if w == 1 else keep_count(self.i.p.keep, w)
        new_rem = rem - nbytes
        too_long = Signal()   # this beat would make the frame longer than max_len
        if w == 1:
            m.d.comb += too_long.eq(~roomy)
        else:
            m.d.comb += too_long.eq(~roomy & (nbytes > rem[:(w - 1).bit_length()]))
        store = Signal()

        # Write side.
        if self.backpressure:
            # full from a register: set when the FIFO is full or is filled by this cycle's
            # store; reads are ignored (it clears one cycle late: conservative, never wrong).
            # A frame alone never fills the FIFO (max_len), so a too-long frame is always
            # accepted, and dropped, once the reader has taken the frames before it.
            m.d.sync += full.eq((used == self.depth) | ((used == self.depth - 1) & store))
            m.d.comb += self.i.ready.eq(~full | dropping)
        else:
            m.d.comb += [full.eq(used == self.depth), self.i.ready.eq(1)]
        m.d.comb += [
            store.eq(self.i.valid & self.i.ready & ~dropping & ~full & ~too_long),
            wr.addr.eq(wptr[:abits]),
            wr.data.eq(Cat(self.i.p.data, self.i.p.last) if w == 1
                       else Cat(self.i.p.data, self.i.p.keep, self.i.p.last)),
            wr.en.eq(store),
        ]
        overflow = Signal()
        drop_long = Signal()
        long_seen = Signal()   # the current frame was refused for its length
        m.d.sync += [self.overflow.eq(overflow), self.too_long.eq(drop_long)]
        with m.If(self.i.valid & self.i.ready):
            with m.If(store):
                m.d.sync += [wptr.eq(wptr + 1), rem.eq(new_rem), roomy.eq(new_rem >= w)]
            with m.Else():
                m.d.sync += [dropping.eq(1), long_seen.eq(long_seen | (too_long & ~dropping))]
            with m.If(self.i.p.last):
                m.d.sync += [rem.eq(self.max_len), roomy.eq(self.max_len >= w),
                             dropping.eq(0), long_seen.eq(0)]
                with m.If(store & ~self.i.p.abort):
                    m.d.sync += wcommit.eq(wptr + 1)
                with m.Else():
                    m.d.sync += wptr.eq(wcommit)
                    with m.If(~self.i.p.abort):
                        # Not the writer's own verdict: count why the FIFO dropped it.
                        with m.If(long_seen | (too_long & ~dropping)):
                            m.d.comb += drop_long.eq(1)
                        with m.Else():
                            m.d.comb += overflow.eq(1)

        # Read side, two stages that advance together: the block RAM read (``fetched``: its
        # output holds an entry; en=0 holds it), then a register that is the stream payload.
        # The block RAM's clock-to-out (4.3 ns with the DP16KD output register off, which is
        # what yosys infers) then ends at a flip-flop instead of running on into the consumer
        # (the transmit CRC, the receive widener): DESIGN.md section 7.
        head = Signal()
        fetched = Signal()
        advance = Signal()
        m.d.comb += [
            head.eq(rptr != wcommit_r),
            rd.addr.eq(rptr[:abits]),
            advance.eq(~self.o.valid | self.o.ready),
            rd.en.eq(advance),
        ]
        with m.If(advance):
            m.d.sync += [
                fetched.eq(head),
                rptr.eq(rptr + head),
                self.o.valid.eq(fetched),
                self.o.payload.eq(Cat(rd.data[:8], C(1, 1), rd.data[8]) if w == 1
                                  else rd.data),
            ]
        return m


class EthMac(wiring.Component):
    """Gigabit Ethernet MAC: GMII in ``rx_domain``/``tx_domain``, W-byte streams in ``sync``.

    Parameters
    ----------
    width : int
        Core datapath width W in bytes (4, 8 or 16).
    max_frame : int
        Largest frame from destination address to FCS inclusive, both directions
        (1518 standard, 9600 jumbo at most). The RX frame FIFO holds the next power of two
        of bytes (2048 for 1518, 16384 for 9600); the TX frame FIFO two maximal frames of
        W-byte beats, rounded up to a power of two (512 x 73 bits at W=8 for 1518).
    rx_domain, tx_domain : str
        Clock domains of the GMII receive and transmit sides (125 MHz at 1 Gb/s).
    cdc_depth : int
        Depth of the W-byte async FIFOs between the MAC domains and ``sync``.

    Ports
    -----
    gmii : :func:`GmiiSignature`
        ``rxd``/``rx_dv``/``rx_er`` sampled in ``rx_domain``; ``txd``/``tx_en``/``tx_er``
        driven from registers in ``tx_domain``.
    rx : Out(PacketSignature(width)), ``sync``
        Good frames without FCS. ``rx.ready`` may fall at any time: whole frames that do not
        fit the RX FIFO are dropped and counted (``stats.rx_fifo_drop``), never truncated.
    tx : In(PacketSignature(width)), ``sync``
        Frames without FCS, at least 1 byte (shorter than 60 bytes are zero padded). Back-
        pressured when the TX FIFO is full; frames longer than ``max_frame - 4`` are dropped.
    stats : Out(:data:`MAC_STATS`), ``sync``
        One-cycle pulses, one per frame outcome (the register map counts them).
    status : Out(:data:`hw.mac_rx.LINK_STATUS`), ``sync``
        RGMII in-band status (link, speed 0/1/2 = 10/100/1000, duplex) sampled between frames.

    Latency RX: FCS check adds 7 ``rx_domain`` cycles, then store-and-forward of the whole
    frame, then the widener, a register slice and the async FIFO. TX: the async FIFO, a
    register slice, store-and-forward of the whole frame in ``tx_domain``, then preamble.
    Throughput: line rate both ways, provided the ``sync`` side moves more than 125 MB/s
    (``W * f_sync``). Reset: ``sync`` reset empties the TX async FIFO,
    ``rx_domain``/``tx_domain`` resets empty their side's frame FIFO; assert all three
    together.
    """

    def __init__(self, width=8, max_frame=1518, *, rx_domain="eth_rx", tx_domain="eth_tx",
                 cdc_depth=16):
        self.width = check_width(width)
        if not isinstance(max_frame, int) or not 64 <= max_frame <= 9600:
            raise ValueError(f"max_frame must be an integer from 64 to 9600, not {max_frame!r}")
        if "sync" in (rx_domain, tx_domain):
            raise ValueError("the MAC domains must differ from the core's 'sync' domain")
        self.max_frame = max_frame
        self.rx_domain = rx_domain
        self.tx_domain = tx_domain
        self.cdc_depth = cdc_depth
        # RX: one maximal frame of bytes. TX: two maximal frames of W-byte beats.
        self.fifo_depth = _pow2_at_least(max_frame)
        self.tx_fifo_depth = _pow2_at_least(2 * -(-(max_frame - 4) // width))
        super().__init__({
            "gmii": Out(GmiiSignature()),
            "rx": Out(PacketSignature(width)),
            "tx": In(PacketSignature(width)),
            "stats": Out(MAC_STATS),
            "status": Out(LINK_STATUS),
        })

    def elaborate(self, platform):
        m = Module()
        w = self.width
        rxd, txd = self.rx_domain, self.tx_domain
        to_rx = DomainRenamer(rxd)
        to_tx = DomainRenamer(txd)

        # Receive.
        m.submodules.mac_rx = mac_rx = to_rx(MacRx(self.max_frame))
        m.submodules.rx_fifo = rx_fifo = to_rx(
            PacketFifo(self.fifo_depth, self.max_frame - 4, backpressure=False))
        m.submodules.rx_widen = rx_widen = to_rx(StreamWidener(w))
        # A register slice before the async FIFO: its full flag (a gray-pointer compare)
        # would otherwise run on through the widener's ready into the frame FIFO's read
        # enable and output registers, and the two ends are placed apart on a full board.
        m.submodules.rx_slice = rx_slice = to_rx(SkidBuffer(packet_layout(w)))
        m.submodules.rx_cdc = rx_cdc = AsyncStreamFifo(
            packet_layout(w), self.cdc_depth, w_domain=rxd, r_domain="sync")
        m.d.comb += [
            mac_rx.rxd.eq(self.gmii.rxd),
            mac_rx.rx_dv.eq(self.gmii.rx_dv),
            mac_rx.rx_er.eq(self.gmii.rx_er),
            rx_fifo.i.payload.eq(mac_rx.o.payload),
            rx_fifo.i.valid.eq(mac_rx.o.valid),
        ]
        wiring.connect(m, rx_fifo.o, rx_widen.i)
        wiring.connect(m, rx_widen.o, rx_slice.i)
        wiring.connect(m, rx_slice.o, rx_cdc.i)
        wiring.connect(m, rx_cdc.o, wiring.flipped(self.rx))

        # Transmit: store and forward at W bytes per beat, so a frame is loaded much faster
        # than it is sent and the next one is ready when the inter-frame gap ends.
        m.submodules.tx_cdc = tx_cdc = AsyncStreamFifo(
            packet_layout(w), self.cdc_depth, w_domain="sync", r_domain=txd)
        # A register slice after the async FIFO: its read enable is then a register beside it,
        # not the frame FIFO's full flag from across the chip (the pointer increment and the
        # LUTRAM read behind that enable were the board's worst `eth_tx` paths).
        m.submodules.tx_slice = tx_slice = to_tx(SkidBuffer(packet_layout(w)))
        m.submodules.tx_fifo = tx_fifo = to_tx(
            PacketFifo(self.tx_fifo_depth, self.max_frame - 4, backpressure=True, width=w))
        m.submodules.tx_narrow = tx_narrow = to_tx(StreamNarrower(w))
        m.submodules.mac_tx = mac_tx = to_tx(MacTx())
        wiring.connect(m, wiring.flipped(self.tx), tx_cdc.i)
        wiring.connect(m, tx_cdc.o, tx_slice.i)
        m.d.comb += [
            tx_fifo.i.payload.eq(Cat(tx_slice.o.payload.as_value(), C(0, 1))),
            tx_fifo.i.valid.eq(tx_slice.o.valid),
            tx_slice.o.ready.eq(tx_fifo.i.ready),
        ]
        wiring.connect(m, tx_fifo.o, tx_narrow.i)
        wiring.connect(m, tx_narrow.o, mac_tx.i)
        m.d.comb += [
            self.gmii.txd.eq(mac_tx.txd),
            self.gmii.tx_en.eq(mac_tx.tx_en),
            self.gmii.tx_er.eq(mac_tx.tx_er),
        ]

        # Events into the core domain.
        rx_ev = {"rx_good": 1, "rx_fcs_error": 1, "rx_runt": 1, "rx_oversize": 1,
                 "rx_phy_error": 1, "rx_preamble_error": 1, "rx_fifo_drop": 1}
        tx_ev = {"tx_frame": 1, "tx_oversize": 1, "tx_underrun": 1}
        m.submodules.rx_stats = rx_stats = PulseCrossing(rx_ev, i_domain=rxd, o_domain="sync")
        m.submodules.tx_stats = tx_stats = PulseCrossing(tx_ev, i_domain=txd, o_domain="sync")
        # A good frame the FIFO then overflowed on is reported once, as rx_fifo_drop.
        ev = mac_rx.events
        good_r = Signal()
        m.d[rxd] += good_r.eq(ev.good)
        rx_in = {
            "rx_good": good_r & ~rx_fifo.overflow & ~rx_fifo.too_long,  # FIFO decides 1 cycle later
            "rx_fcs_error": ev.fcs_error,
            "rx_runt": ev.runt,
            "rx_oversize": ev.oversize,
            "rx_phy_error": ev.phy_error,
            "rx_preamble_error": ev.preamble_error,
            "rx_fifo_drop": rx_fifo.overflow | rx_fifo.too_long,
        }
        tx_in = {
            "tx_frame": mac_tx.events.frame,
            "tx_oversize": tx_fifo.too_long,
            "tx_underrun": mac_tx.events.underrun,
        }
        m.d.comb += [
            rx_stats.i.eq(Cat(*(rx_in[name] for name in rx_ev))),
            tx_stats.i.eq(Cat(*(tx_in[name] for name in tx_ev))),
        ]
        allv = {**{n: rx_stats.o[n] for n in rx_ev}, **{n: tx_stats.o[n] for n in tx_ev}}
        m.d.comb += self.stats.eq(Cat(*(allv[name] for name in MAC_STATS.members)))

        m.submodules.link = link = LevelCrossing(LINK_STATUS, o_domain="sync")
        m.d.comb += [link.i.eq(mac_rx.status), self.status.eq(link.o)]
        return m
