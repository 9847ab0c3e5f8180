"""Clear-on-read counters kept in block RAM (``CsrBlock(counters="block")``).

Every 32-bit count lives in one word of a :class:`amaranth.lib.memory.Memory` (a hundred
counters fill one DP16KD). Each counter also has a small flip-flop *pre-counter* that takes its
increment every cycle. Every cycle one *slot* drains one pre-counter into its RAM word: a
round-robin sweep over the counters, except that a read of counter ``k`` takes the cycle's slot
for ``k`` (the sweep pauses). A slot restarts the pre-counter with only that cycle's increment,
reads the RAM word and adds the drained pre-count, saturating at all-ones, then writes the sum
back (a read writes 0 and returns the sum: the count before the clear). So no event is ever
lost and a read returns every event up to the cycle before it.

Pipeline of a slot issued in cycle t: t: RAM read address, pre-counter captured and restarted;
t+1: RAM data registered (forwarded from the two slots ahead when they hold the same counter, so
back-to-back slots never see a stale word); t+2: 32-bit add, saturation, RAM write, ``rd_valid``
and ``rd_data`` for a read slot. The register between the RAM and the adder keeps the RAM's
clock-to-out off the carry chain.

The pre-counter widths are derived at elaboration: :func:`drain_interval` bounds the cycles
between two drains of one counter (n sweep slots plus the reads that may steal slots on the
way, reads being at least ``read_spacing`` cycles apart), and :func:`pre_counter_width` the
bits that hold that many increments (a clear ``ValueError`` when a requested width cannot).

Latency: ``rd_stb`` -> ``rd_valid`` 2 cycles (:data:`CounterBank.LATENCY`). Throughput: one
read per ``read_spacing`` cycles (the caller's guarantee; not checked in hardware). Reset:
pre-counters 0; the RAM has no reset: the first sweep after reset treats every word it has not
yet drained as 0 (a read does too), so the counts start at 0 either way.
"""

from amaranth import *
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CounterBank", "drain_interval", "pre_counter_width"]


def drain_interval(n, read_spacing=2):
    """Worst-case cycles between two drains of one counter in a bank of ``n`` counters whose
    reads are at least ``read_spacing`` cycles apart: ``n`` sweep slots plus at most
    ``ceil((n + s) / (s - 1))`` reads stealing slots in between."""
    if n < 1:
        raise ValueError(f"a counter bank needs at least one counter, not {n}")
    if read_spacing < 2:
        raise ValueError(f"reads must be at least 2 cycles apart, not {read_spacing} "
                         "(back-to-back reads could starve the sweep)")
    return n + -(-(n + read_spacing) // (read_spacing - 1))


def pre_counter_width(incrwidth, n, read_spacing=2, width=None):
    """Bits of a pre-counter of ``incrwidth``-bit increments that holds the worst case between
    two drains (:func:`drain_interval`); with ``width`` given, check it instead (``ValueError``
    when it cannot hold the worst case)."""
    worst = drain_interval(n, read_spacing) * ((1 << incrwidth) - 1)
    need = worst.bit_length()
    if width is None:
        return need
    if width < need:
        raise ValueError(f"a {width}-bit pre-counter cannot hold {worst} (the worst case of "
                         f"{incrwidth}-bit increments in a bank of {n} counters with reads "
                         f"{read_spacing} cycles apart); it needs {need} bits")
    return width


class CounterBank(wiring.Component):
    """``n`` saturating 32-bit clear-on-read counters in block RAM; see module docstring.

    Parameters
    ----------
    incrwidths : list of int
        The increment width of each counter (``inc.c<i>`` is added every cycle).
    read_spacing : int
        The minimum cycles between two ``rd_stb`` (the caller's guarantee).
    pre_widths : list of int or None
        Pre-counter widths to use instead of the derived ones (checked).

    Ports: ``inc`` (In, a struct ``c0``, ``c1``...), ``rd_stb`` and ``rd_idx`` (In: read and
    clear counter ``rd_idx``), ``rd_valid`` and ``rd_data`` (Out: the count, 2 cycles later).
    """

    LATENCY = 2

    def __init__(self, incrwidths, *, read_spacing=2, pre_widths=None):
        self.incrwidths = list(incrwidths)
        self.n = n = len(self.incrwidths)
        self.read_spacing = read_spacing
        drain_interval(n, read_spacing)   # checks n and read_spacing
        given = pre_widths if pre_widths is not None else [None] * n
        if len(given) != n:
            raise ValueError(f"{len(given)} pre-counter widths for {n} counters")
        self.pre_widths = [pre_counter_width(w, n, read_spacing, g)
                           for w, g in zip(self.incrwidths, given)]
        # The counts (public so a simulation can inspect or preset them).
        self.counts = memory.MemoryData(shape=32, depth=n, init=[])
        super().__init__({
            "inc": In(data.StructLayout({f"c{i}": w for i, w in enumerate(self.incrwidths)})),
            "rd_stb": In(1), "rd_idx": In(range(n)),
            "rd_valid": Out(1), "rd_data": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.n
        m.submodules.mem = mem = memory.Memory(data=self.counts)
        rp = mem.read_port()              # not transparent: a same-cycle write is forwarded
        wp = mem.write_port()

        # Slot selection: a read takes the cycle's slot, else the sweep drains ``ptr``.
        ptr = Signal(range(n))
        fresh = Signal(init=1)            # the first sweep after reset: unswept words are 0
        slot = Signal(range(n))
        m.d.comb += slot.eq(Mux(self.rd_stb, self.rd_idx, ptr))
        with m.If(~self.rd_stb):
            m.d.sync += ptr.eq(Mux(ptr == n - 1, 0, ptr + 1))
            with m.If(ptr == n - 1):
                m.d.sync += fresh.eq(0)

        pres = []
        for i, w in enumerate(self.pre_widths):
            pre = Signal(w, name=f"pre{i}")
            m.d.sync += pre.eq(Mux(slot == i, 0, pre) + self.inc[f"c{i}"])
            pres.append(pre)

        # Stage 1: the RAM word arrives; forward from the slots one and two ahead.
        v1, rd1, z1 = Signal(), Signal(), Signal()
        idx1 = Signal(range(n))
        p1 = Signal(max(self.pre_widths))
        m.d.comb += rp.addr.eq(slot)
        m.d.sync += [v1.eq(1), rd1.eq(self.rd_stb), idx1.eq(slot),
                     p1.eq(Array(pres)[slot]), z1.eq(fresh & (slot >= ptr))]

        # Stage 2: add, saturate, write back (0 after a read).
        v2, rd2, v3 = Signal(), Signal(), Signal()
        idx2, idx3 = Signal(range(n)), Signal(range(n))
        p2 = Signal(len(p1))
        old2, w3 = Signal(32), Signal(32)
        total = Signal(33)
        count = Signal(32)
        m.d.comb += [
            total.eq(old2 + p2),
            count.eq(Mux(total[32], 0xFFFF_FFFF, total[:32])),
            wp.addr.eq(idx2), wp.data.eq(Mux(rd2, 0, count)), wp.en.eq(v2),
            self.rd_valid.eq(v2 & rd2), self.rd_data.eq(count),
        ]
        old1 = Mux(v2 & (idx2 == idx1), wp.data,
                   Mux(v3 & (idx3 == idx1), w3, Mux(z1, 0, rp.data)))
        m.d.sync += [v2.eq(v1), rd2.eq(rd1), idx2.eq(idx1), p2.eq(p1), old2.eq(old1),
                     v3.eq(v2), idx3.eq(idx2), w3.eq(wp.data)]
        return m
