"""Shared payload buffer pool: equal pages in one block RAM, handed out from a free list.

The RSC engine stores a frame in a chain of pages and chains the frames of an aggregate, both
through its own link tables. The free list is a FIFO of page numbers with a registered head:
a free page is offered every cycle from a flip-flop, so allocation costs no cycle and no
search (a lowest-free-page search over a bitmap of 144 pages was a 144-deep chain).
"""

from amaranth import *
from amaranth.lib import fifo, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .compare import lt_const
from .stream import check_width

__all__ = ["PagePool"]


class PagePool(wiring.Component):
    """``pages`` pages of ``page_bytes`` bytes, ``width`` bytes per word.

    Ports
    -----
    alloc_ok, alloc_page : out
        A free page exists, and the next one of the free list (registered).
    alloc : in
        Take ``alloc_page`` this cycle (only when ``alloc_ok``).
    free, free_page : in
        Return a page this cycle (offered again no earlier than two cycles later).
    free_count : out
        Free pages (registered).
    low : out
        ``free_count < low_mark``, registered from the count's next value (the same in every
        cycle as that compare, without it in front of the reader's logic).
    filling : out
        The free list is being refilled after reset (no page is missing: exhaustion is not
        reported then).
    w_en, w_page, w_beat, w_data : in
        Write word ``w_beat`` of page ``w_page``.
    r_en, r_page, r_beat : in;  r_data : out
        Synchronous read: ``r_data`` holds the word ``read_latency`` cycles after ``r_en``.

    ``read_latency`` 1: one memory, its read data straight out. 2: the memory is split into
    banks of ``bank_words`` words (a few block RAMs each); every bank's read data is
    registered, then the bank is selected (the select delayed along). On the ECP5, yosys does
    not use the block RAMs' output registers, so with one memory the path from a block RAM's
    clock to its unregistered output (about 4.3 ns) is followed by the multiplexer over all of
    them; with banks, that multiplexer starts at flip-flops.

    Reset frees every page (the memory content is not cleared): for ``pages`` cycles after
    reset the free list is refilled, one page per cycle, and pages are offered as they are
    put back.
    """

    @staticmethod
    def check(width, pages, page_bytes):
        """Raise ``ValueError`` unless the parameters make a pool."""
        check_width(width)
        if pages < 2 or pages > 1024:
            raise ValueError(f"pool pages must be 2..1024, not {pages}")
        if page_bytes % width or page_bytes < 64 or page_bytes & (page_bytes - 1):
            raise ValueError(f"page_bytes must be a power of two >= 64 and a multiple of the "
                             f"width, not {page_bytes}")

    def __init__(self, width=8, pages=32, page_bytes=2048, *, read_latency=1, bank_words=1024,
                 low_mark=0):
        self.check(width, pages, page_bytes)
        if read_latency not in (1, 2):
            raise ValueError(f"read_latency must be 1 or 2, not {read_latency}")
        if bank_words < 1 or bank_words & (bank_words - 1):
            raise ValueError(f"bank_words must be a power of two, not {bank_words}")
        self.read_latency = read_latency
        self.bank_words = bank_words
        if not 0 <= low_mark <= pages:
            raise ValueError(f"low_mark must be 0..{pages} (the pages), not {low_mark}")
        self.low_mark = low_mark
        self.width = width
        self.pages = pages
        self.page_bytes = page_bytes
        self.page_beats = page_bytes // width
        pg = range(pages)
        bt = range(self.page_beats)
        super().__init__({
            "alloc_ok": Out(1), "alloc_page": Out(pg), "alloc": In(1),
            "free": In(1), "free_page": In(pg), "free_count": Out(range(pages + 1)),
            "low": Out(1),
            "filling": Out(1),
            "w_en": In(1), "w_page": In(pg), "w_beat": In(bt), "w_data": In(8 * width),
            "r_en": In(1), "r_page": In(pg), "r_beat": In(bt), "r_data": Out(8 * width),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.pages * self.page_beats
        beat_bits = (self.page_beats - 1).bit_length()
        waddr = Signal(range(depth))
        raddr = Signal(range(depth))
        m.d.comb += [waddr.eq(Cat(self.w_beat[:beat_bits], self.w_page)),
                     raddr.eq(Cat(self.r_beat[:beat_bits], self.r_page))]
        if self.read_latency == 1:
            m.submodules.mem = mem = Memory(shape=8 * self.width, depth=depth, init=[])
            wp = mem.write_port()
            rp = mem.read_port(domain="sync")
            m.d.comb += [
                wp.addr.eq(waddr), wp.data.eq(self.w_data), wp.en.eq(self.w_en),
                rp.addr.eq(raddr), rp.en.eq(self.r_en), self.r_data.eq(rp.data),
            ]
        else:
            bw = self.bank_words
            lb = (bw - 1).bit_length()
            nb = (depth + bw - 1) // bw
            sel1 = Signal(range(nb))
            sel2 = Signal(range(nb))
            banks = []
            for b in range(nb):
                mem = Memory(shape=8 * self.width, depth=min(bw, depth - b * bw), init=[])
                m.submodules[f"bank{b}"] = mem
                wp = mem.write_port()
                rp = mem.read_port(domain="sync")
                q = Signal(8 * self.width, name=f"bank{b}_q")
                m.d.comb += [
                    wp.addr.eq(waddr[:lb]), wp.data.eq(self.w_data),
                    wp.en.eq(self.w_en & (waddr[lb:] == b) if nb > 1 else self.w_en),
                    rp.addr.eq(raddr[:lb]), rp.en.eq(self.r_en),
                ]
                m.d.sync += q.eq(rp.data)
                banks.append(q)
            if nb > 1:
                with m.If(self.r_en):
                    m.d.sync += sel1.eq(raddr[lb:])
                m.d.sync += sel2.eq(sel1)
                m.d.comb += self.r_data.eq(Array(banks)[sel2])
            else:
                m.d.comb += self.r_data.eq(banks[0])
        # The free list: every page once, in any order. After reset it is refilled 0..P-1.
        pw = max((self.pages - 1).bit_length(), 1)
        m.submodules.fl = fl = fifo.SyncFIFOBuffered(width=pw, depth=self.pages)
        fill = Signal(range(self.pages + 1))
        filling = Signal()
        m.d.comb += [filling.eq(fill != self.pages), self.filling.eq(filling)]
        with m.If(filling):
            m.d.sync += fill.eq(fill + 1)
        m.d.comb += [
            fl.w_en.eq(filling | self.free), fl.w_data.eq(Mux(filling, fill, self.free_page)),
            self.alloc_ok.eq(fl.r_rdy), self.alloc_page.eq(fl.r_data),
            fl.r_en.eq(self.alloc),
        ]
        # The count moves by -1, 0 or +1 per cycle. Its next value and ``low`` (the compare of
        # it) are selected among the three outcomes, each computed from the ``count`` register
        # alone, by the allocation and the return: the allocation comes from the owner's
        # ready logic, and a carry chain and a compare behind it were the longest path there.
        count = Signal(range(self.pages + 1))
        low = Signal(init=self.low_mark > 0)
        take, give = self.alloc & fl.r_rdy, filling | self.free
        lm = self.low_mark
        with m.If(take & ~give):
            m.d.sync += [count.eq(count - 1), low.eq(lt_const(count, lm + 1))]
        with m.Elif(give & ~take):
            m.d.sync += [count.eq(count + 1), low.eq(lt_const(count, lm - 1))]
        with m.Else():
            m.d.sync += low.eq(lt_const(count, lm))
        m.d.comb += [self.free_count.eq(count), self.low.eq(low)]
        return m
