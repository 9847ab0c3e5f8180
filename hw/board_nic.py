"""The NIC of a board: one MAC per RGMII port, the NIC core, the self-test buffers, and the glue.

::

    two ports (Versa):
      GMII 0 -> EthMac 0 rx --+                                      +--> EthMac 1 tx -> GMII 1
                              +-> FrameArbiter -> NicCore tx_i .. tx_o
        InjectBuffer (path 0)-+                                      (capture taps either MAC tx)
      GMII 1 -> EthMac 1 rx --+-> FrameArbiter -> NicCore rx_i .. rx_o --> EthMac 0 tx -> GMII 0
        InjectBuffer (path 1)-+

    one port (ECPIX-5): EthMac 0 rx goes to the TX or the RX path by ``board.ctrl.role`` (switched
    between frames); both paths' output share EthMac 0 tx through a FrameArbiter.

Port 0 faces the host, port 1 the network. Everything here runs in ``sync`` (the core clock;
the board top renames it), the MACs' GMII sides in ``eth_tx`` and ``rx<n>``.

Ethernet cannot be backpressured: when a path is slower than its input (segmenting adds headers)
its ``tx_i``/``rx_i`` stalls, the MAC's receive FIFO fills and the next frames are dropped whole
there and counted (``mac[n].rx_fifo_drop``), never truncated. A frame longer than a port allows
is dropped whole at its transmit side (``mac[n].tx_oversize``).

Control: the core's UART bridge (``uart_rx``/``uart_tx``). The ``board``, ``mac`` and
``selftest`` regfiles of regmap/tunnelnic.rdl are fed here (:data:`hw.core.BOARD_GROUPS`).
"""

from amaranth import *
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .core import NicCore
from .csr import struct_value
from .layouts import TsoRequest
from .mac import MAC_STATS, EthMac, GmiiSignature
from .stream import PacketSignature, check_width, keep_count, packet_layout

__all__ = ["FrameArbiter", "InjectBuffer", "CaptureBuffer", "BoardNic"]


def _lanes_mask(count, width):
    """``keep`` of a beat holding ``count`` (1..width, or more: all) bytes."""
    return Mux(count >= width, (1 << width) - 1,
               Cat(*(count > i for i in range(width))))


class FrameArbiter(wiring.Component):
    """Two packet streams into one, whole packets at a time, taking turns.

    The grant moves only between packets: while the granted input is idle and no packet is in
    flight it passes to the other input (one cycle), and after every packet it passes on, so
    neither input can starve the other. Latency 0 (combinational), throughput 1 beat per cycle
    within a packet plus at most one idle cycle between packets. Backpressure passes through to
    the granted input; the other waits. Reset: input 0 granted.
    """

    def __init__(self, width, meta=None):
        self.width = check_width(width)
        super().__init__({"i0": In(PacketSignature(width, meta)),
                          "i1": In(PacketSignature(width, meta)),
                          "o": Out(PacketSignature(width, meta))})

    def elaborate(self, platform):
        m = Module()
        sel = Signal()
        busy = Signal()
        cur_valid = Signal()
        m.d.comb += [
            cur_valid.eq(Mux(sel, self.i1.valid, self.i0.valid)),
            self.o.valid.eq(cur_valid),
            self.o.payload.eq(Mux(sel, self.i1.payload.as_value(), self.i0.payload.as_value())),
            self.i0.ready.eq(~sel & self.o.ready),
            self.i1.ready.eq(sel & self.o.ready),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += busy.eq(~self.o.p.last)
            with m.If(self.o.p.last):
                m.d.sync += sel.eq(~sel)
        with m.Elif(~busy & ~cur_valid):
            m.d.sync += sel.eq(~sel)
        return m


class InjectBuffer(wiring.Component):
    """A frame buffer written one 32-bit word at a time, sent as one packet on ``go``.

    Ports: ``w_data``/``w_en`` store a word at the write pointer and advance it (bits 7:0 are
    the first byte on the wire); ``go`` with ``length`` (bytes) sends the buffer's first
    ``length`` bytes on ``o`` (``meta`` = ``meta_in`` at ``go``) and rewinds the write pointer,
    as ``rewind`` does alone.
    ``go`` while ``busy``, with ``length`` 0 or beyond ``size`` bytes is refused: ``refused``
    pulses, nothing is sent. ``sent`` pulses when a frame is accepted.

    Latency: first beat 2 cycles after ``go``; then 1 beat per cycle as ``o.ready`` allows.
    Reset: idle, write pointer 0.
    """

    def __init__(self, width, size, meta=None):
        self.width = check_width(width)
        if size % width or size < width:
            raise ValueError(f"inject buffer size {size} must be a multiple of W={width}")
        self.size = size
        self.meta = meta
        members = {"o": Out(PacketSignature(width, meta)), "w_data": In(32), "w_en": In(1),
                   "go": In(1), "rewind": In(1), "length": In(range(size + 1)), "busy": Out(1),
                   "sent": Out(1), "refused": Out(1)}
        if meta is not None:
            members["meta_in"] = In(meta)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        w = self.width
        rows = self.size // w
        per_row = w // 4
        m.submodules.mem = mem = memory.Memory(shape=8 * w, depth=rows, init=[])
        wr = mem.write_port(granularity=32)
        rd = mem.read_port()

        wptr = Signal(range(rows * per_row + 1))
        m.d.comb += [wr.addr.eq(wptr // per_row if per_row > 1 else wptr),
                     wr.data.eq(self.w_data.replicate(per_row))]
        lane = wptr % per_row if per_row > 1 else C(0, 1)
        m.d.comb += wr.en.eq(Mux(self.w_en & (wptr < rows * per_row),
                                 Cat(*(lane == k for k in range(per_row))), 0))
        with m.If(self.go | self.rewind):
            m.d.sync += wptr.eq(0)
        with m.Elif(self.w_en & (wptr < rows * per_row)):
            m.d.sync += wptr.eq(wptr + 1)

        busy = Signal()
        left = Signal(range(self.size + 1))
        raddr = Signal(range(rows + 1))
        meta = Signal(self.meta) if self.meta is not None else None
        ok = Signal()
        m.d.comb += [self.busy.eq(busy | self.o.valid),
                     ok.eq(~self.busy & (self.length != 0) & (self.length <= self.size))]
        m.d.comb += [self.sent.eq(self.go & ok), self.refused.eq(self.go & ~ok)]
        with m.If(self.go & ok):
            m.d.sync += [busy.eq(1), left.eq(self.length), raddr.eq(0)]
            if meta is not None:
                m.d.sync += meta.eq(self.meta_in)

        keep = Signal(w)
        last = Signal()
        m.d.comb += [rd.addr.eq(raddr), self.o.p.data.eq(rd.data), self.o.p.keep.eq(keep),
                     self.o.p.last.eq(last)]
        if meta is not None:
            m.d.comb += self.o.p.meta.eq(meta)
        with m.If(~self.o.valid | self.o.ready):
            m.d.comb += rd.en.eq(1)
            with m.If(busy & (left != 0)):
                m.d.sync += [self.o.valid.eq(1), raddr.eq(raddr + 1),
                             keep.eq(_lanes_mask(left, w)), last.eq(left <= w),
                             left.eq(Mux(left > w, left - w, 0))]
                with m.If(left <= w):
                    m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += self.o.valid.eq(0)
        with m.Else():
            m.d.comb += rd.en.eq(0)
        return m


class CaptureBuffer(wiring.Component):
    """Copies whole packets seen on a stream tap into a buffer, for reading word by word.

    ``tap_valid``/``tap_payload`` is a stream handshake observed (``tap_valid`` = valid and
    ready). After ``arm`` every packet that starts is stored whole, each from a fresh row of W
    bytes, with its length in bytes (up to ``frames`` packets); the first packet that does not
    fit (data or length table) is dropped (``missed`` pulses) and capture stops (``armed``
    falls). ``captured`` pulses per packet stored. Reading: ``length`` is the next packet's
    length (``length_next`` advances), ``data`` the next 32-bit word (``data_next`` advances;
    packets back to back, each padded to whole rows). ``arm`` also rewinds both read pointers.

    Latency: a word is readable 2 cycles after its pointer moved. Never backpressures.
    Reset: not armed, empty.
    """

    def __init__(self, width, size, frames=16):
        self.width = check_width(width)
        if size % width or size < width:
            raise ValueError(f"capture buffer size {size} must be a multiple of W={width}")
        self.size, self.frames = size, frames
        super().__init__({
            "tap_valid": In(1), "tap_payload": In(packet_layout(width)),
            "arm": In(1), "armed": Out(1), "count": Out(range(frames + 1)),
            "captured": Out(1), "missed": Out(1),
            "length": Out(16), "length_next": In(1), "data": Out(32), "data_next": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        w = self.width
        rows = self.size // w
        per_row = w // 4
        m.submodules.mem = mem = memory.Memory(shape=8 * w, depth=rows, init=[])
        wr = mem.write_port()
        rd = mem.read_port()
        lengths = Array(Signal(16, name=f"cap_len{i}") for i in range(self.frames))

        armed = Signal()
        in_frame = Signal()     # inside a packet (whether stored or not)
        storing = Signal()      # the current packet is being stored
        spilled = Signal()      # the current packet ran out of rows
        wrow = Signal(range(rows + 1))
        start = Signal(range(rows + 1))
        flen = Signal(16)
        count = Signal(range(self.frames + 1))
        p = self.tap_payload
        beat = self.tap_valid
        first = beat & ~in_frame
        take = Signal()
        m.d.comb += take.eq(Mux(first, armed & (count < self.frames), storing))
        fits = Signal()
        m.d.comb += [
            fits.eq(take & ~spilled & (wrow < rows)),
            wr.addr.eq(wrow), wr.data.eq(p.data), wr.en.eq(beat & fits),
            self.armed.eq(armed), self.count.eq(count),
        ]
        new_len = flen + keep_count(p.keep, w)
        with m.If(beat):
            m.d.sync += in_frame.eq(~p.last)
            with m.If(first):
                m.d.sync += [storing.eq(take), start.eq(wrow), spilled.eq(0)]
            with m.If(fits):
                m.d.sync += wrow.eq(wrow + 1)
            with m.Elif(take):
                m.d.sync += spilled.eq(1)
            m.d.sync += flen.eq(Mux(p.last, 0, new_len))
            with m.If(p.last & take):
                m.d.sync += storing.eq(0)
                with m.If(fits & ~spilled):
                    m.d.sync += [lengths[count].eq(new_len), count.eq(count + 1)]
                    m.d.comb += self.captured.eq(1)
                with m.Else():
                    m.d.sync += [wrow.eq(Mux(first, wrow, start)), armed.eq(0)]
                    m.d.comb += self.missed.eq(1)
        with m.If(first & armed & (count == self.frames)):
            m.d.sync += armed.eq(0)
            m.d.comb += self.missed.eq(1)

        # Read side.
        lptr = Signal(range(self.frames + 1))
        dptr = Signal(range(rows * per_row + 1))
        m.d.comb += [
            rd.addr.eq(dptr // per_row if per_row > 1 else dptr),
            self.length.eq(Mux(lptr < count, lengths[lptr], 0)),
        ]
        lane = Signal(range(per_row)) if per_row > 1 else None
        if per_row > 1:
            m.d.sync += lane.eq(dptr % per_row)
            m.d.comb += self.data.eq(rd.data.word_select(lane, 32))
        else:
            m.d.comb += self.data.eq(rd.data)
        with m.If(self.length_next & (lptr < count)):
            m.d.sync += lptr.eq(lptr + 1)
        with m.If(self.data_next & (dptr < rows * per_row - 1)):
            m.d.sync += dptr.eq(dptr + 1)
        # arm last: it wins over everything above.
        with m.If(self.arm):
            m.d.sync += [armed.eq(1), count.eq(0), wrow.eq(0), lptr.eq(0), dptr.eq(0),
                         storing.eq(0)]
        return m


class BoardNic(wiring.Component):
    """The NIC of a board with one or two RGMII ports; see module docstring.

    Parameters
    ----------
    ports : int
        1 or 2 RGMII ports (port 0 the host side).
    width, profiles, header_window, opaque_bytes, contexts, pool_pages, tso, rsc
        :class:`hw.core.NicCore` parameters.
    max_frames : tuple of int
        Each port's MAC maximum frame (destination address to FCS).
    clk_freq, baud, uart_timeout
        Core clock (Hz) and UART settings of the register bridge.
    inject_bytes, capture_bytes, capture_frames
        Self-test buffer sizes.

    Ports: ``gmii<n>`` (:func:`hw.mac.GmiiSignature`, ``rx<n>`` / ``eth_tx`` domains),
    ``uart_rx``/``uart_tx``, and for LEDs ``rx_act``/``tx_act`` (a pulse per frame per port).
    """

    def __init__(self, ports=2, width=4, *, profiles=4, header_window=256, opaque_bytes=64,
                 contexts=8, pool_pages=32, tso=True, rsc=False, max_frames=(9600, 1518),
                 clk_freq=62_500_000, baud=115200, uart_timeout=None, inject_bytes=2048,
                 capture_bytes=4096, capture_frames=16):
        if ports not in (1, 2):
            raise ValueError(f"a board has 1 or 2 RGMII ports, not {ports}")
        if len(max_frames) < ports:
            raise ValueError("max_frames needs one entry per port")
        self.ports = ports
        self.width = check_width(width)
        self.max_frames = tuple(max_frames[:ports])
        self.clk_freq = clk_freq
        self.core = NicCore(width, profiles=profiles, header_window=header_window,
                            opaque_bytes=opaque_bytes, contexts=contexts, pool_pages=pool_pages,
                            tso=tso, rsc=rsc, control="uart", clk_freq=clk_freq, baud=baud,
                            uart_timeout=uart_timeout, board=True,
                            host_max_frame=max_frames[0] - 4)
        self.macs = [EthMac(width, self.max_frames[n], rx_domain=f"rx{n}", tx_domain="eth_tx")
                     for n in range(ports)]
        self.inject = InjectBuffer(width, inject_bytes, meta=TsoRequest)
        self.capture = CaptureBuffer(width, capture_bytes, capture_frames)
        members = {f"gmii{n}": Out(GmiiSignature()) for n in range(ports)}
        members.update({"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1),
                        "rx_act": Out(ports), "tx_act": Out(ports)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        w = self.width
        core = m.submodules.core = self.core
        m.d.comb += [core.uart_rx.eq(self.uart_rx), self.uart_tx.eq(core.uart_tx)]
        cfg = core.ext_cfg
        macs = self.macs
        for n, mac in enumerate(macs):
            m.submodules[f"mac{n}"] = mac
            wiring.connect(m, wiring.flipped(getattr(self, f"gmii{n}")), mac.gmii)
        m.d.comb += [self.rx_act.eq(Cat(mac.stats.rx_good for mac in macs)),
                     self.tx_act.eq(Cat(mac.stats.tx_frame for mac in macs))]

        # Self-test injection: one buffer, into the TX (path 0) or the RX (path 1) path.
        inj = m.submodules.inject = self.inject
        st = cfg.selftest
        wr_pulse = Signal()
        m.d.sync += wr_pulse.eq(st.inject_data.data_swmod)   # the word is stored a cycle later
        path = Signal()
        with m.If(st.inject.go & ~inj.busy):
            m.d.sync += path.eq(st.inject.path)
        m.d.comb += [
            inj.w_data.eq(st.inject_data.data), inj.w_en.eq(wr_pulse),
            inj.go.eq(st.inject.go), inj.rewind.eq(st.inject.rewind), inj.length.eq(st.inject.length),
            inj.meta_in.eq(Cat(st.inject.tso, C(0, 14))),
        ]
        m.submodules.tx_arb = tx_arb = FrameArbiter(w, TsoRequest)
        m.submodules.rx_arb = rx_arb = FrameArbiter(w)
        m.d.comb += [
            tx_arb.i1.valid.eq(inj.o.valid & ~path), tx_arb.i1.payload.eq(inj.o.payload),
            rx_arb.i1.valid.eq(inj.o.valid & path),
            rx_arb.i1.payload.eq(Cat(inj.o.p.data, inj.o.p.keep, inj.o.p.last)),
            inj.o.ready.eq(Mux(path, rx_arb.i1.ready, tx_arb.i1.ready)),
        ]

        # Received frames: port 0 -> TX path, port 1 -> RX path (one port: by role).
        ctrl = cfg.board.ctrl
        req = Signal(TsoRequest)
        src0 = macs[0].rx
        in_frame = Signal()
        role = Signal()
        with m.If(src0.valid & src0.ready):
            m.d.sync += in_frame.eq(~src0.p.last)
        with m.If(~in_frame):   # settings change between frames only
            m.d.sync += [req.eq(Cat(ctrl.tso_request, C(0, 14))), role.eq(ctrl.role)]
        m.d.comb += tx_arb.i0.payload.eq(Cat(src0.p.data, src0.p.keep, src0.p.last, req))
        if self.ports == 2:
            m.d.comb += [tx_arb.i0.valid.eq(src0.valid), src0.ready.eq(tx_arb.i0.ready)]
            wiring.connect(m, macs[1].rx, rx_arb.i0)
        else:
            m.d.comb += [
                tx_arb.i0.valid.eq(src0.valid & ~role), rx_arb.i0.valid.eq(src0.valid & role),
                src0.ready.eq(Mux(role, rx_arb.i0.ready, tx_arb.i0.ready)),
                rx_arb.i0.payload.eq(src0.payload),
            ]
        wiring.connect(m, tx_arb.o, core.tx_i)
        wiring.connect(m, rx_arb.o, core.rx_i)

        # Outputs: TX path -> port 1, RX path -> port 0 (one port: both to port 0).
        # The RX result meta (segments, MSS) has no place on Ethernet: dropped at the port.
        def plain(src, dst):
            m.d.comb += [dst.valid.eq(src.valid), src.ready.eq(dst.ready),
                         dst.payload.eq(Cat(src.p.data, src.p.keep, src.p.last))]

        if self.ports == 2:
            wiring.connect(m, core.tx_o, macs[1].tx)
            plain(core.rx_o, macs[0].tx)
            taps = [macs[0].tx, macs[1].tx]
        else:
            m.submodules.out_arb = out_arb = FrameArbiter(w)
            wiring.connect(m, core.tx_o, out_arb.i0)
            plain(core.rx_o, out_arb.i1)
            wiring.connect(m, out_arb.o, macs[0].tx)
            taps = [macs[0].tx]

        # Capture: a copy of what enters the chosen port's transmitter.
        cap = m.submodules.capture = self.capture
        port = st.capture.port
        if len(taps) == 2:
            tap_valid = Mux(port, taps[1].valid & taps[1].ready, taps[0].valid & taps[0].ready)
            tap_payload = Mux(port, taps[1].payload.as_value(), taps[0].payload.as_value())
        else:
            tap_valid = taps[0].valid & taps[0].ready & ~port
            tap_payload = taps[0].payload.as_value()
        # The tap is registered (it only observes), so the port mux costs no path time.
        tv = Signal()
        tp = Signal(len(tap_payload))
        m.d.sync += [tv.eq(tap_valid), tp.eq(tap_payload)]
        m.d.comb += [cap.tap_valid.eq(tv), cap.tap_payload.eq(tp), cap.arm.eq(st.capture.arm),
                     cap.length_next.eq(st.capture_length.length_swacc),
                     cap.data_next.eq(st.capture_data.data_swacc)]

        # Status, capabilities and counters of the board's regfiles (assigned whole, by name).
        sts, ev = core.ext_sts, core.ext_events
        status = {}
        for n, mac in enumerate(macs):
            status.update({(f"link{n}",): mac.status.link, (f"speed{n}",): mac.status.speed,
                           (f"duplex{n}",): mac.status.duplex})
        fill = [
            (sts.board.status, status),
            (sts.board.caps, {("ports",): C(self.ports, 2),
                              ("core_mhz",): C(self.clk_freq // 1_000_000, 8),
                              ("host_max",): C(self.max_frames[0] - 4, 14)}),
            (sts.selftest.inject_status, {("busy",): inj.busy,
                                          ("size",): C(self.inject.size, 16)}),
            (sts.selftest.capture_status, {("frames",): cap.count, ("armed",): cap.armed,
                                           ("size",): C(self.capture.size, 16)}),
            (sts.selftest.capture_length, {("length",): cap.length}),
            (sts.selftest.capture_data, {("data",): cap.data}),
            (ev.selftest, {("injected",): inj.sent, ("inject_refused",): inj.refused,
                           ("captured",): cap.captured, ("capture_missed",): cap.missed}),
        ]
        for view, values in fill:
            m.d.comb += view.as_value().eq(struct_value(view.shape(), values))
        mac_ev = {}
        for n, mac in enumerate(macs):
            for k in MAC_STATS.members:
                mac_ev[(n, k)] = mac.stats[k]
        m.d.comb += ev.mac.as_value().eq(struct_value(ev.mac.shape(), mac_ev))
        return m
