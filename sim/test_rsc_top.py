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
