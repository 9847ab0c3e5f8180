"""Clock-domain crossing for packet streams and for the MAC's status and event ports.

:class:`AsyncStreamFifo` carries any stream payload (a packet stream: framing travels in the
payload) from one clock domain to another. :class:`PulseCrossing` carries a struct of one-bit
event pulses (per-cycle counter increments) and :class:`LevelCrossing` a struct of slowly
changing levels (link status) into another domain.
"""

from amaranth import *
from amaranth.lib import cdc, data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AsyncStreamFifo", "PulseCrossing", "LevelCrossing"]


class AsyncStreamFifo(wiring.Component):
    """Asynchronous FIFO of stream payloads from ``w_domain`` (port ``i``) to ``r_domain`` (``o``).

    Wraps :class:`amaranth.lib.fifo.AsyncFIFOBuffered` (gray-coded pointers, two-flop
    synchronizers; ``depth`` is rounded up to a power of two plus one). Throughput 1 beat per
    cycle on each side; latency a few cycles of each clock. ``i.ready`` is low only when full.
    Reset: the write domain's reset empties the FIFO (it is synchronized into the read
    domain); the read domain's reset alone must not be asserted without it.
    """

    def __init__(self, shape, depth=16, *, w_domain, r_domain):
        if depth < 3:
            raise ValueError(f"async FIFO depth must be at least 3, not {depth}")
        if w_domain == r_domain:
            raise ValueError(f"async FIFO needs two different domains, not {w_domain!r} twice")
        self.shape = shape
        self.depth = depth
        self.w_domain = w_domain
        self.r_domain = r_domain
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self.shape).width
        m.submodules.fifo = q = fifo.AsyncFIFOBuffered(
            width=width, depth=self.depth, w_domain=self.w_domain, r_domain=self.r_domain)
        m.d.comb += [
            q.w_data.eq(self.i.payload.as_value() if hasattr(self.i.payload, "as_value")
                        else self.i.payload),
            q.w_en.eq(self.i.valid),
            self.i.ready.eq(q.w_rdy),
            self.o.payload.eq(q.r_data),
            self.o.valid.eq(q.r_rdy),
            q.r_en.eq(self.o.ready),
        ]
        return m


class PulseCrossing(wiring.Component):
    """Every one-bit field of ``layout`` is a pulse in ``i_domain``, re-issued in ``o_domain``.

    One :class:`amaranth.lib.cdc.PulseSynchronizer` per field (toggle + two-flop
    synchronizer + edge detect): each input pulse gives exactly one output pulse, a few
    ``o_domain`` cycles later, provided pulses of one field are at least two ``o_domain``
    cycles apart (MAC events are at most one per frame, so dozens of cycles apart).
    """

    def __init__(self, layout, *, i_domain, o_domain):
        layout = data.StructLayout(layout) if isinstance(layout, dict) else layout
        for name, field in layout:
            if field.width != 1:
                raise ValueError(f"pulse field {name!r} must be 1 bit wide, not {field.width}")
        self._layout = layout
        self.i_domain = i_domain
        self.o_domain = o_domain
        super().__init__({"i": In(layout), "o": Out(layout)})

    def elaborate(self, platform):
        m = Module()
        outs = []
        for name, _ in self._layout:
            ps = cdc.PulseSynchronizer(i_domain=self.i_domain, o_domain=self.o_domain)
            m.submodules[f"ps_{name}"] = ps
            m.d.comb += ps.i.eq(self.i[name])
            outs.append(ps.o)
        m.d.comb += self.o.eq(Cat(*outs))
        return m


class LevelCrossing(wiring.Component):
    """Levels of ``layout`` (quasi-static, such as link up and speed) into ``o_domain``.

    Two-flop :class:`amaranth.lib.cdc.FFSynchronizer` per bit: multi-bit fields may be seen
    mixed for one cycle while they change, which is acceptable for status bits only.
    """

    def __init__(self, layout, *, o_domain):
        layout = data.StructLayout(layout) if isinstance(layout, dict) else layout
        self._layout = layout
        self.o_domain = o_domain
        super().__init__({"i": In(layout), "o": Out(layout)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.sync = cdc.FFSynchronizer(self.i.as_value(), self.o.as_value(),
                                               o_domain=self.o_domain)
        return m
