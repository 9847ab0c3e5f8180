"""Shared payload buffer pool: equal pages in one block RAM, handed out from a free list.

The RSC engine stores a frame in a chain of pages and chains the frames of an aggregate, both
through its own link tables. The free list is a bitmap: the lowest free
page is offered every cycle, so allocation costs no cycle.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .cam import lowest_set
from .stream import check_width

__all__ = ["PagePool"]


class PagePool(wiring.Component):
    """``pages`` pages of ``page_bytes`` bytes, ``width`` bytes per word.

    Ports
    -----
    alloc_ok, alloc_page : out
        A free page exists, and the lowest one (combinational).
    alloc : in
        Take ``alloc_page`` this cycle (only when ``alloc_ok``).
    free, free_page : in
        Return a page this cycle (seen by ``alloc_ok`` on the next cycle).
    free_count : out
        Free pages (registered).
    w_en, w_page, w_beat, w_data : in
        Write word ``w_beat`` of page ``w_page``.
    r_en, r_page, r_beat : in;  r_data : out
        Synchronous read: ``r_data`` holds the word one cycle after ``r_en`` (latency 1).

    Reset frees every page (the memory content is not cleared).
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
        free = Signal(self.pages, init=(1 << self.pages) - 1)
        ok, page = lowest_set(free, self.pages)
        m.d.comb += [self.alloc_ok.eq(ok), self.alloc_page.eq(page)]
        take = Signal(self.pages)
        give = Signal(self.pages)
        m.d.comb += [take.eq(Mux(self.alloc & ok, Const(1, self.pages) << page, 0)),
                     give.eq(Mux(self.free, Const(1, self.pages) << self.free_page, 0))]
        m.d.sync += free.eq((free & ~take) | give)
        count = Signal(range(self.pages + 1), init=self.pages)
        m.d.sync += count.eq(count - (self.alloc & ok) + self.free)
        m.d.comb += self.free_count.eq(count)
        return m
