"""Stream buffers: a register slice (skid buffer) and a block-RAM FIFO, both for any payload.

Both are plain :class:`amaranth.lib.stream` components with ports ``i`` (sink) and ``o``
(source), so they drop between any two blocks of the datapath. :class:`ReservedFifo` is a
plain queue for writers that reserve room in advance.
"""

from amaranth import *
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer", "StreamFifo", "ReservedFifo", "HeadFifo"]


class SkidBuffer(wiring.Component):
    """Register slice that breaks both the payload/valid path and the ready path.

    Latency 1 cycle, throughput 1 beat per cycle with ``o.ready`` held high; ``i.ready`` is a
    register (it depends on nothing combinational), so long ready chains are cut here. Holds up
    to two beats: the output register and one skid register filled when the output stalls.
    Reset empties both.
    """

    def __init__(self, shape):
        self.shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        skid = Signal(self.shape)
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(~self.o.valid | self.o.ready):
            # Output register is free (or being taken): refill it, skid first.
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m


class StreamFifo(wiring.Component):
    """Synchronous FIFO of stream payloads, in block RAM when ``depth`` is large enough.

    Latency 2 cycles from write to read on an empty FIFO (``SyncFIFOBuffered``), throughput 1
    beat per cycle. ``i.ready`` is low only when ``depth`` entries are stored. ``level`` counts
    entries, for callers that want to reserve room in advance. ``ram`` (``"distributed"`` or
    ``"block"``, ``depth`` a power of two) forces the memory's kind: a :class:`HeadFifo`
    instead, same timing and capacity.
    """

    def __init__(self, shape, depth, *, ram=None):
        if depth < 2:
            raise ValueError(f"FIFO depth must be at least 2, not {depth}")
        if ram not in (None, "distributed", "block"):
            raise ValueError(f"ram must be None, 'distributed' or 'block', not {ram!r}")
        if ram is not None and depth & (depth - 1):
            raise ValueError(f"with ram, the depth must be a power of two, not {depth}")
        self.shape = shape
        self.depth = depth
        self.ram = ram
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self.shape).width
        if self.ram is None:
            m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=width, depth=self.depth)
        else:
            m.submodules.fifo = q = HeadFifo(width, self.depth, ram=self.ram)
        m.d.comb += [
            q.w_data.eq(self.i.payload.as_value()),
            q.w_en.eq(self.i.valid),
            self.i.ready.eq(q.w_rdy),
            self.o.payload.eq(q.r_data),
            self.o.valid.eq(q.r_rdy),
            q.r_en.eq(self.o.ready),
            self.level.eq(q.level),
        ]
        return m


class ReservedFifo(wiring.Component):
    """Synchronous FIFO for a writer that never writes when it is full.

    The ports are those of :class:`amaranth.lib.fifo.SyncFIFO` that such a writer needs
    (``w_data``, ``w_en``, ``r_data``, ``r_rdy``, ``r_en``, ``level``; ``r_en`` is ignored while
    ``r_rdy`` is low), with the same timing: an
    entry written in one cycle can be read (``r_data``, combinational) from the next. The
    memory is written at the write pointer in *every* cycle and ``w_en`` only advances the
    pointer, so a wide memory (spread over many distributed-RAM cells) has no write-enable net
    fanning out to all of them; the slot written in cycles without ``w_en`` is free. The
    writer must reserve room from ``level`` and keep at most ``depth - 1`` entries stored: with
    ``depth`` stored, the slot at the write pointer is the oldest entry, and the write of the
    next cycle overwrites it (not detected). Reset: empty.

    ``slices`` splits the memory into that many column slices, each with its own pair of
    pointers, so no address net reaches every cell either. Slice ``k`` keeps entry ``n`` at
    address ``n ^ k`` (its pointers count in that encoding, from reset value ``k``): copies
    that differ, which synthesis does not merge back into one register.

    ``head=True`` makes ``r_data`` a register (the head entry, prefetched from the memory), so
    the reader's logic starts at a flip-flop instead of at the read pointer's fan-out over the
    memory cells, and all ``depth`` entries may be stored: an entry written into an empty FIFO
    is readable two cycles later instead of one; throughput stays one entry per cycle (the next
    entry is loaded in the cycle the head is read). ``r_rdy`` is a register too. Each slice has
    its own head register and its own load enable (``~valid | r_en``, from the slice's own valid
    copy), so no enable net reaches every head flip-flop. ``level`` counts the head. The memory
    is ``2 * depth`` deep (a distributed-RAM cell is 16 deep anyway), so a slice is empty
    exactly when its pointers are equal.
    """

    def __init__(self, width, depth, *, slices=1, head=False):
        if depth < 2 or depth & (depth - 1):
            raise ValueError(f"FIFO depth must be a power of two >= 2, not {depth}")
        if not 1 <= slices <= min(depth, width):
            raise ValueError(f"slices must be 1..{min(depth, width)}, not {slices}")
        self.width = width
        self.depth = depth
        self.slices = slices
        self.head = head
        super().__init__({
            "w_data": In(width), "w_en": In(1),
            "r_data": Out(width), "r_rdy": Out(1), "r_en": In(1),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        do_read = self.r_rdy & self.r_en
        bounds = [self.width * k // self.slices for k in range(self.slices + 1)]
        mem_depth = 2 * self.depth if self.head else self.depth
        for k in range(self.slices):
            lo, hi = bounds[k], bounds[k + 1]
            storage = Memory(shape=hi - lo, depth=mem_depth, init=[])
            m.submodules[f"storage{k}"] = storage
            w_port = storage.write_port()
            r_port = storage.read_port(domain="comb")
            produce = Signal(range(mem_depth), name=f"produce{k}", init=k)
            consume = Signal(range(mem_depth), name=f"consume{k}", init=k)
            m.d.comb += [
                w_port.addr.eq(produce), w_port.data.eq(self.w_data[lo:hi]), w_port.en.eq(1),
                r_port.addr.eq(consume),
            ]
            with m.If(self.w_en):
                m.d.sync += produce.eq(((produce ^ k) + 1)[:len(produce)] ^ k)
            if not self.head:
                m.d.comb += self.r_data[lo:hi].eq(r_port.data)
                with m.If(do_read):
                    m.d.sync += consume.eq(((consume ^ k) + 1)[:len(consume)] ^ k)
                continue
            # The slice's head: loaded when it is empty or read; valid if the memory had one.
            # (All slices' valid copies are equal; each is computed from its own pointers.)
            valid = Signal(name=f"head_valid{k}")
            load = Signal(name=f"head_load{k}")
            head = Signal(hi - lo, name=f"head{k}")
            nonempty = produce != consume
            m.d.comb += [load.eq(~valid | self.r_en), self.r_data[lo:hi].eq(head)]
            with m.If(load):
                m.d.sync += [head.eq(r_port.data), valid.eq(nonempty)]
                with m.If(nonempty):
                    m.d.sync += consume.eq(((consume ^ k) + 1)[:len(consume)] ^ k)
            if k == 0:
                m.d.comb += self.r_rdy.eq(valid)
        if not self.head:
            m.d.comb += self.r_rdy.eq(self.level != 0)
        with m.If(self.w_en & ~do_read):
            m.d.sync += self.level.eq(self.level + 1)
        with m.If(do_read & ~self.w_en):
            m.d.sync += self.level.eq(self.level - 1)
        return m


class HeadFifo(wiring.Component):
    """Synchronous FIFO in distributed RAM whose head entry is a register.

    Ports as :class:`amaranth.lib.fifo.SyncFIFO` (``w_data``, ``w_en``, ``w_rdy``, ``r_data``,
    ``r_rdy``, ``r_en``, ``level``; ``level`` counts the head too), timing as
    :class:`amaranth.lib.fifo.SyncFIFOBuffered`: an entry written into an empty FIFO is at the
    head two cycles later. SyncFIFOBuffered's synchronous read port lands in block RAM without
    its output register (DESIGN.md section 7: 4.3 ns clock-to-out measured on the parser's
    decision queue), and so does a combinational read followed by a register (yosys merges
    the two): the memory here is marked ``ram_style = "distributed"``. With ``ram="block"``
    it is marked ``"block"`` instead: same ports and timing in cycles, but the head register
    is then the block RAM's read latch, whose clock-to-out starts the reader's paths (for
    slow clocks, where distributed RAM's area matters more). Holds ``depth`` entries
    (``depth`` a power of two; ``depth - 1`` in the memory). While ``r_rdy`` is low, ``r_data``
    holds the last entry read, as SyncFIFOBuffered's does. Reset: empty.
    """

    def __init__(self, width, depth, *, ram="distributed"):
        if depth < 2 or depth & (depth - 1):
            raise ValueError(f"FIFO depth must be a power of two >= 2, not {depth}")
        if ram not in ("distributed", "block"):
            raise ValueError(f"ram must be 'distributed' or 'block', not {ram!r}")
        self.width = width
        self.depth = depth
        self.ram = ram
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(width), "r_rdy": Out(1), "r_en": In(1),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        # In block RAM, ``no_rw_check``: yosys then maps the read (the port and ``r_data``
        # after it, merged) to the DP16KD's own, without the logic that would give a read of
        # the entry being written the old data (a write delayed by a register of the memory's
        # width). That read never happens: a read (``do_read``) needs ``inner != 0``, and with
        # 1 .. depth - 1 entries in the memory ``produce = consume + inner`` is not ``consume``.
        attrs = {"ram_style": self.ram}
        if self.ram == "block":
            attrs["no_rw_check"] = 1
        m.submodules.storage = storage = Memory(shape=self.width, depth=self.depth, init=[],
                                                attrs=attrs)
        w_port = storage.write_port()
        r_port = storage.read_port(domain="comb")
        produce = Signal(range(self.depth))
        consume = Signal(range(self.depth))
        inner = Signal(range(self.depth))          # entries in the memory (at most depth - 1)
        load = ~self.r_rdy | self.r_en             # the head is free or leaves
        do_write = self.w_en & self.w_rdy
        do_read = (inner != 0) & load
        m.d.comb += [
            self.w_rdy.eq(inner != self.depth - 1),
            w_port.addr.eq(produce), w_port.data.eq(self.w_data), w_port.en.eq(do_write),
            r_port.addr.eq(consume),
            self.level.eq(inner + self.r_rdy),
        ]
        with m.If(do_write):
            m.d.sync += produce.eq(produce + 1)
        with m.If(do_read):
            m.d.sync += consume.eq(consume + 1)
        with m.If(do_write & ~do_read):
            m.d.sync += inner.eq(inner + 1)
        with m.If(do_read & ~do_write):
            m.d.sync += inner.eq(inner - 1)
        with m.If(load):
            m.d.sync += self.r_rdy.eq(inner != 0)
        with m.If(do_read):
            m.d.sync += self.r_data.eq(r_port.data)
        return m

