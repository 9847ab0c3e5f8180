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
    filling : out
        The free list is being refilled after reset (no page is missing: exhaustion is not
        reported then).
    w_en, w_page, w_beat, w_data : in
        Write word ``w_beat`` of page ``w_page``.
    r_en, r_page, r_beat : in;  r_data : out
        Synchronous read: ``r_data`` holds the word one cycle after ``r_en`` (latency 1).

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

    def __init__(self, width=8, pages=32, page_bytes=2048):
        self.check(width, pages, page_bytes)
        self.width = width
        self.pages = pages
        self.page_bytes = page_bytes
        self.page_beats = page_bytes // width
        pg = range(pages)
        bt = range(self.page_beats)
        super().__init__({
            "alloc_ok": Out(1), "alloc_page": Out(pg), "alloc": In(1),
            "free": In(1), "free_page": In(pg), "free_count": Out(range(pages + 1)),
            "filling": Out(1),
            "w_en": In(1), "w_page": In(pg), "w_beat": In(bt), "w_data": In(8 * width),
            "r_en": In(1), "r_page": In(pg), "r_beat": In(bt), "r_data": Out(8 * width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=8 * self.width,
                                        depth=self.pages * self.page_beats, init=[])
        wp = mem.write_port()
        rp = mem.read_port(domain="sync")
        beat_bits = (self.page_beats - 1).bit_length()
        m.d.comb += [
            wp.addr.eq(Cat(self.w_beat[:beat_bits], self.w_page)),
            wp.data.eq(self.w_data), wp.en.eq(self.w_en),
            rp.addr.eq(Cat(self.r_beat[:beat_bits], self.r_page)),
            rp.en.eq(self.r_en), self.r_data.eq(rp.data),
        ]
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
        count = Signal(range(self.pages + 1))
        m.d.sync += count.eq(count - (self.alloc & fl.r_rdy) + (filling | self.free))
        m.d.comb += self.free_count.eq(count)
        return m
