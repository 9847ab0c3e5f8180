"""A simulation top for the RSC engine: its statistics struct as a plain vector port.

(tunnelnic.rtlsim.wrapper makes a Signal per port from the port's shape, which for a Struct
shape is a View it cannot export; the engine's ``stats`` is flattened here.)
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.layouts import parsed_signature
from hw.rsc import RscEngine
from hw.rsc_layouts import RxMeta, STAT_NAMES
from hw.stream import PacketSignature

__all__ = ["RscTop"]


class RscTop(wiring.Component):
    def __init__(self, width=8, **kw):
        self.engine = RscEngine(width, **kw)
        n = self.engine.contexts
        super().__init__({
            "i": In(parsed_signature(width)),
            "o": Out(PacketSignature(width, RxMeta)),
            "enable": In(1), "timeout_us": In(16), "max_bytes": In(16), "max_segs": In(8),
            "flush_all": In(1), "stats": Out(len(STAT_NAMES)),
            "dbg_index": In(range(max(n, 2))), "dbg_valid": Out(1), "dbg_count": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = e = self.engine
        wiring.connect(m, wiring.flipped(self.i), e.i)
        wiring.connect(m, e.o, wiring.flipped(self.o))
        m.d.comb += [e.enable.eq(self.enable), e.timeout_us.eq(self.timeout_us),
                     e.max_bytes.eq(self.max_bytes), e.max_segs.eq(self.max_segs),
                     e.flush_all.eq(self.flush_all), self.stats.eq(e.stats.as_value()),
                     e.dbg_index.eq(self.dbg_index), self.dbg_valid.eq(e.dbg_valid),
                     self.dbg_count.eq(e.dbg_count)]
        return m


class RscChainTop(wiring.Component):
    """HeaderParser followed by the RSC engine (the RX path minus the MAC), profile table as a
    flat vector port."""

    def __init__(self, width=8, profiles=2, **kw):
        from amaranth.lib import data
        from hw.parser import HeaderParser
        from hw.profile import Profile
        self.parser = HeaderParser(width, profiles=profiles)
        self.engine = RscEngine(width, **kw)
        self.table_layout = data.ArrayLayout(Profile, profiles)
        super().__init__({
            "i": In(PacketSignature(width)),
            "o": Out(PacketSignature(width, RxMeta)),
            "table": In(Shape.cast(self.table_layout).width),
            "enable": In(1), "timeout_us": In(16), "max_bytes": In(16), "max_segs": In(8),
            "flush_all": In(1), "stats": Out(len(STAT_NAMES)),
            "dbg_index": In(8), "dbg_valid": Out(1), "dbg_count": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.parser = p = self.parser
        m.submodules.engine = e = self.engine
        wiring.connect(m, wiring.flipped(self.i), p.i)
        wiring.connect(m, p.o, e.i)
        wiring.connect(m, e.o, wiring.flipped(self.o))
        m.d.comb += [p.table.as_value().eq(self.table),
                     e.enable.eq(self.enable), e.timeout_us.eq(self.timeout_us),
                     e.max_bytes.eq(self.max_bytes), e.max_segs.eq(self.max_segs),
                     e.flush_all.eq(self.flush_all), self.stats.eq(e.stats.as_value()),
                     e.dbg_index.eq(self.dbg_index), self.dbg_valid.eq(e.dbg_valid),
                     self.dbg_count.eq(e.dbg_count)]
        return m
