"""The NIC core: TX and RX datapaths, the CSR block, and the wiring between them.

::

    tx_i --> HeaderParser --> [TsoEngine]  --> tx_o
    rx_i --> HeaderParser --> [RscEngine]  --> rx_o
    bus (AXI4-Lite) or uart_rx/uart_tx (UartBridge) --> CsrBlock --> profiles, TSO/RSC settings
                                                              <-- every block's stats (counters)

``tx_i`` carries a :class:`hw.layouts.TsoRequest` as ``meta`` (the host's per-packet request);
``tx_o`` carries plain packets; ``rx_o`` carries :class:`hw.rsc_layouts.RxMeta` as ``meta``, the
RX per-packet result (aggregate or not, segments, MSS, context, profile, kind, checksum status;
DESIGN.md section 2). An engine not built in (``tso=False``, ``rsc=False``) is replaced by a
pass-through of the parser's output, and the CSR block reports it in
``id.caps2.has_tso``/``has_rsc``; without RSC, ``rx_o.meta`` is that of an RSC pass-through
(one segment, the TCP payload length as MSS, the record's profile and kind) except that
``csum_ok`` is 0, as nothing verified the checksums. With ``parser=False`` the datapaths are
plain wires (for control-path tests) and ``rx_o.meta`` is 0. Every counter of the map that no
built-in block feeds stays 0.

With RSC built in, the ``flow`` registers show the context selected by ``flow.select``: its
flow key, expected sequence number, segment count and MSS (all 0 for a context without an open
aggregate).

With ``board=True`` the regfiles of :data:`BOARD_GROUPS` (board control and status, per-port
MAC counters, self-test) are not the core's to feed: their ``cfg``, ``sts`` and ``events``
members become the ports ``ext_cfg``, ``ext_sts`` and ``ext_events`` for the board around the
core (:mod:`hw.board_nic`). Without it they read 0.

Stats are wired by name: every field of a block's ``stats`` port must have a counter register
of the same name in the block's regfile of ``regmap/tunnelnic.rdl`` (an error at construction
otherwise), so a new statistic cannot be silently dropped.

Latency and throughput: those of the parser (and engines); the core adds none. Backpressure:
passes through. Reset: synchronous, whole core.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .csr import CsrBlock, leaf_paths, struct_value, sub_layout, view_at
from .layouts import TsoRequest
from .profile import FIELDS
from .rsc_layouts import RxMeta
from .stream import PacketSignature, check_width, keep_count

__all__ = ["NicCore", "BOARD_GROUPS"]

#: Regfiles of regmap/tunnelnic.rdl that the board around the core feeds (``board=True``).
BOARD_GROUPS = ("board", "mac", "selftest")


class NicCore(wiring.Component):
    """See module docstring.

    Parameters
    ----------
    width : int
        Datapath bytes per beat (4, 8, 16).
    profiles, header_window, opaque_bytes : int
        Parser parameters (also reported in the identity registers).
    contexts, pool_pages : int
        RSC parameters reported in the identity registers.
    parser, tso, rsc : bool
        Which datapath blocks to build (see module docstring).
    control : "axil" or "uart"
        CSR access: an AXI4-Lite port ``bus``, or UART pins ``uart_rx``/``uart_tx`` through
        :class:`hw.uart_bridge.UartBridge` (then ``clk_freq``, ``baud``, ``uart_timeout``).
    clk_freq : int
        The core clock (Hz): the UART bridge's bit timing and RSC's microsecond timer; at
        80 MHz or less the parsers keep their decision queues and elastic lines in block RAM
        (``HeaderParser(queue_ram="block")``, same behaviour, fewer LUTs), and RSC the
        descriptor fields it reads a cycle late (``RscEngine(desc_ram="block")``), and the CSR
        block its counters (``CsrBlock(counters="block")``, reads 2 cycles slower).
    board : bool
        Expose the :data:`BOARD_GROUPS` registers as ``ext_cfg``/``ext_sts``/``ext_events``.
    host_max_frame : int or None
        With ``board``: the longest frame the host port sends (bytes without FCS); RSC
        aggregates are capped to it and to ``board.ctrl.host_max_frame`` (less 22 bytes).
    """

    def __init__(self, width=8, *, profiles=8, header_window=256, opaque_bytes=64, contexts=32,
                 pool_pages=144, parser=True, tso=False, rsc=False, control="axil",
                 clk_freq=125_000_000, baud=115200, uart_timeout=None, board=False,
                 host_max_frame=None):
        self.width = check_width(width)
        if control not in ("axil", "uart"):
            raise ValueError(f"control must be 'axil' or 'uart', not {control!r}")
        if (tso or rsc) and not parser:
            raise ValueError("tso/rsc need parser=True (the engines consume parse records)")
        self.parser_enabled, self.tso_enabled, self.rsc_enabled = parser, tso, rsc
        self.profiles, self.header_window, self.opaque_bytes = profiles, header_window, opaque_bytes
        self.control = control
        self.clk_freq, self.baud, self.uart_timeout = clk_freq, baud, uart_timeout
        self.csr = CsrBlock({"W": width, "P": profiles, "N": contexts, "POOL": pool_pages,
                             "WINDOW": header_window, "OPAQUE": opaque_bytes},
                            counters="block" if clk_freq <= 80_000_000 else "ff")
        if control == "uart":
            from .uart_bridge import UartBridge
            self.bridge = UartBridge(clk_freq, baud, self.csr.addr_width, timeout=uart_timeout)
            self._check_stats("uart_stats", self.bridge)
        self.tx_parser = self.rx_parser = None
        if parser:
            from .parser import HeaderParser
            # At 80 MHz or less the parsers' decision queues and lines go to block RAM: its
            # 4.3 ns read clock-to-out costs nothing there, and it saves about 150 LUTRAM
            # cells per parser at W=4 (the Versa with RSC is short of LUTs, docs/boards.md).
            kw = dict(header_window=header_window, opaque_bytes=opaque_bytes, profiles=profiles,
                      queue_ram="block" if clk_freq <= 80_000_000 else "distributed")
            self.tx_parser = HeaderParser(width, user=TsoRequest, **kw)
            self.rx_parser = HeaderParser(width, **kw)
            for group, block in (("tx_parser_stats", self.tx_parser),
                                 ("rx_parser_stats", self.rx_parser)):
                self._check_stats(group, block)
        self.tso = None
        if tso:
            from .tso import TsoEngine
            self.tso = TsoEngine(width, header_window=header_window, opaque_bytes=opaque_bytes)
            self._check_stats("tso_stats", self.tso)
        self.rsc = None
        if rsc:
            from .rsc import RscEngine
            # (At 80 MHz or less, like the parsers' queues: the descriptor fields RSC reads a
            # cycle late in block RAM, ``RscEngine(desc_ram="block")``.)
            self.rsc = RscEngine(width, contexts=contexts, pages=pool_pages,
                                 opaque_bytes=opaque_bytes,
                                 cycles_per_us=max(1, clk_freq // 1_000_000),
                                 desc_ram="block" if clk_freq <= 80_000_000 else "distributed")
            self._check_stats("rsc_stats", self.rsc)
        members = {
            "tx_i": In(PacketSignature(width, TsoRequest)), "tx_o": Out(PacketSignature(width)),
            "rx_i": In(PacketSignature(width)), "rx_o": Out(PacketSignature(width, RxMeta)),
        }
        self.board = board
        self.host_max_frame = host_max_frame
        self.ext_layouts = {}
        if board:
            for kind, flow in (("cfg", Out), ("sts", In), ("events", In)):
                layout = sub_layout(self.csr.signature.members[kind].shape, BOARD_GROUPS)
                if layout is not None:
                    self.ext_layouts[kind] = layout
                    members[f"ext_{kind}"] = flow(layout)
        if control == "axil":
            members["bus"] = self.csr.signature.members["bus"]
        else:
            members["uart_rx"] = In(1, init=1)
            members["uart_tx"] = Out(1, init=1)
        super().__init__(members)

    def _rsc_size_cap(self, cfg):
        """RSC's cap of an aggregate's outer IPv4 total length: ``rsc.caps.size_cap`` (at most
        65535) and, on a board, what the host port takes: ``board.ctrl.host_max_frame`` (at
        most ``host_max_frame``, the port's MAC limit) less 22 bytes of Ethernet header and two
        VLAN tags."""
        caps = cfg.rsc.caps
        cap = Mux(caps.size_cap > 0xFFFF, 0xFFFF, caps.size_cap)
        if self.board and self.host_max_frame is not None:
            want = cfg.board.ctrl.host_max_frame
            host = Mux(want > self.host_max_frame, self.host_max_frame, want) - 22
            cap = Mux(cap > host, host, cap)
        return cap

    def _check_stats(self, group, block):
        events = self.csr.signature.members["events"].shape
        have = set(events[group].shape.members) if group in events.members else set()
        missing = set(block.signature.members["stats"].shape.members) - have
        if missing:
            raise ValueError(f"{type(block).__name__}.stats has {sorted(missing)} but "
                             f"regmap/tunnelnic.rdl regfile {group} does not count them")

    def _parsed_meta(self, rec):
        """RX metadata of a packet no RSC engine saw: one segment, its TCP payload length as
        MSS when it has a TCP header, context 0, the record's profile and kind, checksums not
        verified (``csum_ok`` 0)."""
        flow_pkt = rec.tcp.present & (rec.off.l4 != 0)
        return struct_value(RxMeta, {("segs",): C(1, 8),
                                     ("mss",): Mux(flow_pkt, rec.payload_len, 0),
                                     ("profile",): rec.cls.profile, ("kind",): rec.cls.kind})

    def _flow_view(self, m, rsc, index):
        """The ``flow`` registers from the engine's debug read port; all 0 unless the selected
        context (index < N) holds an open aggregate."""
        in_range = Signal()
        m.d.sync += in_range.eq(index < rsc.contexts)
        ok = Signal()
        m.d.comb += ok.eq(rsc.dbg_valid & in_range)
        key = [rsc.dbg_key.word_select(k, 32) for k in range(7)]
        fields = {
            ("state", "valid"): ok, ("state", "tunnel"): key[0][3],
            ("state", "profile"): key[0][:3],
            ("state", "count"): rsc.dbg_count, ("state", "mss"): rsc.dbg_mss,
            ("next_seq", "seq"): rsc.dbg_seq,
            ("outer_src", "addr"): key[1], ("outer_dst", "addr"): key[2],
            ("inner_src", "addr"): key[3], ("inner_dst", "addr"): key[4],
            ("ports", "dport"): key[5][:16], ("ports", "sport"): key[5][16:],
            ("flow_field", "value"): key[6],
        }
        return {("flow",) + path: Mux(ok, value, 0) for path, value in fields.items()}

    def elaborate(self, platform):
        m = Module()
        m.submodules.csr = csr = self.csr
        if self.control == "axil":
            wiring.connect(m, wiring.flipped(self.bus), csr.bus)
        else:
            m.submodules.bridge = self.bridge
            wiring.connect(m, self.bridge.bus, csr.bus)
            m.d.comb += [self.bridge.rx.eq(self.uart_rx), self.uart_tx.eq(self.bridge.tx)]

        cfg = csr.cfg
        # Struct ports are assigned as whole vectors (see hw.csr.struct_value).
        sts = {("id", "caps2", "has_tso"): C(int(self.tso_enabled), 1),
               ("id", "caps2", "has_rsc"): C(int(self.rsc_enabled), 1)}
        events = {}

        for name, parser, src, dst in (("tx", self.tx_parser, self.tx_i, self.tx_o),
                                       ("rx", self.rx_parser, self.rx_i, self.rx_o)):
            if parser is None:
                # Plain wires; RX metadata 0.
                m.d.comb += [dst.valid.eq(src.valid), src.ready.eq(dst.ready),
                             dst.p.as_value().eq(Cat(src.p.data, src.p.keep, src.p.last))]
            else:
                m.submodules[f"{name}_parser"] = parser
                m.d.comb += [parser.i.valid.eq(src.valid), src.ready.eq(parser.i.ready),
                             parser.i.p.eq(src.p)]
                table = {(slot, field): cfg.profile[slot][f"word{word}"][field]
                         for slot in range(self.profiles) for field, word, _l, _w in FIELDS}
                m.d.comb += parser.table.as_value().eq(
                    struct_value(parser.table.shape(), table))
                group = f"{name}_parser_stats"
                group_layout = csr.events.shape()[group].shape
                for field in parser.signature.members["stats"].shape.members:
                    stat = Value.cast(parser.stats[field])
                    target = group_layout[field].shape
                    if isinstance(target, data.ArrayLayout):   # a bit per profile
                        for i in range(target.length):
                            events[(group, field, i)] = stat[i]
                    else:
                        events[(group, field)] = stat
                if name == "rx" and self.rsc is not None:
                    m.submodules.rsc = rsc = self.rsc
                    wiring.connect(m, parser.o, rsc.i)
                    caps = cfg.rsc.caps
                    m.d.comb += [
                        dst.valid.eq(rsc.o.valid), rsc.o.ready.eq(dst.ready),
                        dst.p.as_value().eq(rsc.o.p.as_value()),
                        rsc.enable.eq(cfg.rsc.ctrl.enable),
                        rsc.flush_all.eq(cfg.rsc.ctrl.flush_all),
                        rsc.timeout_us.eq(cfg.rsc.timeout.timeout_us),
                        rsc.max_bytes.eq(self._rsc_size_cap(cfg)),
                        rsc.max_segs.eq(caps.seg_cap),
                        rsc.dbg_index.eq(cfg.flow.select.index),
                    ]
                    for field in rsc.signature.members["stats"].shape.members:
                        events[("rsc_stats", field)] = Value.cast(rsc.stats[field])
                    sts.update(self._flow_view(m, rsc, cfg.flow.select.index))
                elif name == "tx" and self.tso is not None:
                    m.submodules.tso = tso = self.tso
                    wiring.connect(m, parser.o, tso.i)
                    m.d.comb += [dst.valid.eq(tso.o.valid), tso.o.ready.eq(dst.ready),
                                 dst.p.as_value().eq(tso.o.p.as_value()),
                                 tso.enable.eq(cfg.tso.ctrl.enable),
                                 tso.mss_default.eq(cfg.tso.ctrl.mss_default)]
                    for field in tso.signature.members["stats"].shape.members:
                        events[("tso_stats", field)] = Value.cast(tso.stats[field])
                else:
                    # No engine on this path: pass the parsed packet through (RX: with the
                    # RX metadata a pass-through of the RSC engine would carry, unverified).
                    o = parser.o.p
                    meta = [self._parsed_meta(o.meta)] if name == "rx" else []
                    m.d.comb += [dst.valid.eq(parser.o.valid), parser.o.ready.eq(dst.ready),
                                 dst.p.as_value().eq(Cat(o.data, o.keep, o.last, *meta))]
            # Edge counters of the core.
            for port, suffix in ((src, "in"), (dst, "out")):
                beat = port.valid & port.ready
                events[("core_stats", f"{name}_pkts_{suffix}")] = beat & port.p.last
                events[("core_stats", f"{name}_bytes_{suffix}")] = Mux(
                    beat, keep_count(port.p.keep, self.width), 0)
        if self.control == "uart":
            for field in self.bridge.signature.members["stats"].shape.members:
                events[("uart_stats", field)] = Value.cast(self.bridge.stats[field])
        if "sts" in self.ext_layouts:
            for path in leaf_paths(self.ext_layouts["sts"]):
                sts[path] = view_at(self.ext_sts, path)
        if "events" in self.ext_layouts:
            for path in leaf_paths(self.ext_layouts["events"]):
                events[path] = view_at(self.ext_events, path)
        if "cfg" in self.ext_layouts:
            layout = self.ext_layouts["cfg"]
            m.d.comb += self.ext_cfg.as_value().eq(struct_value(
                layout, {path: view_at(cfg, path) for path in leaf_paths(layout)}))
        m.d.comb += [csr.sts.as_value().eq(struct_value(csr.sts.shape(), sts)),
                     csr.events.as_value().eq(struct_value(csr.events.shape(), events))]
        return m
