"""The CSR block, elaborated from the compiled SystemRDL register map.

Nothing here knows a register by name except the layout hash: the block walks
:func:`tunnelnic.regmap.compile_map` and builds storage, read mux, write decode and counters
from the field properties. Its ports mirror the map's hierarchy:

``bus``     ``In(AxiLiteSignature)``: the CSR bus (:mod:`hw.axil`).
``cfg``     ``Out``: every software-writable field that hardware reads (``sw=rw|w, hw=r``), as
            nested structs/arrays: ``cfg.tso.ctrl.mss_default``, ``cfg.profile[2].word0.enable``.
            ``singlepulse`` fields are high for exactly one cycle after the write. A field with
            ``swmod`` (``swacc``) adds a 1-bit ``<field>_swmod`` (``<field>_swacc``) member, high
            in the cycle software writes (reads) its register: ``cfg.selftest.capture_data.data_swacc``.
``sts``     ``In``: every hardware-written field (``hw=w``) except ``id.layout.hash``, which the
            block drives itself: ``sts.flow.next_seq.seq``.
``events``  ``In``: one increment per counter register, ``incrwidth`` bits wide:
            ``events.rsc_stats.merged``. Added every cycle.

Semantics: registers are 32 bits, accessed as whole aligned words (address bits 1:0 ignored,
``wstrb`` honoured per byte). A read of an unmapped address or of a register without readable
fields, and a write to an unmapped address or to a register without writable fields, answer
SLVERR and change nothing (in particular, an erroring read clears no counter). Counters
(``counter; rclr; incrsaturate``) are 32-bit, saturate at all-ones and are cleared by a
successful read, which returns the count before the clear; an increment arriving in the cycle of
the read is kept for the next read, so no event is ever lost.

Counters are built one of two ways (``CsrBlock(counters=...)``, same behaviour): ``"ff"``
(default) a 32-bit flip-flop counter each (:func:`read_clear_counter`); ``"block"`` all counts
in one block RAM behind small flip-flop pre-counters (:class:`hw.counter_bank.CounterBank`; the
NIC core picks it at 80 MHz or less).

Latency: AXI4-Lite address -> response 3 cycles (:class:`hw.axil.AxiLiteSlave`), a read 5
cycles with ``counters="block"`` (every register's, the bank answers 3 cycles after the register
port's ``r_stb``: ``CsrBlock.read_latency``); a written ``cfg`` value is visible the cycle after
the register port's write strobe. Reset: every field takes its RDL reset value, counters 0.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .axil import AxiLiteSignature, AxiLiteSlave
from .counter_bank import CounterBank

__all__ = ["CsrBlock", "read_clear_counter", "map_layout", "struct_value", "leaf_paths",
           "sub_layout", "view_at"]

LAYOUT_HASH_PATH = ("id", "layout")


def _insert(tree, keys, width):
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = width


def _to_layout(tree):
    if isinstance(tree, int):
        return tree
    if all(isinstance(k, int) for k in tree):
        count = len(tree)
        if sorted(tree) != list(range(count)):
            raise ValueError("register array indices are not contiguous")
        return data.ArrayLayout(_to_layout(tree[0]), count)
    return data.StructLayout({k: _to_layout(v) for k, v in tree.items()})


def map_layout(regmap, kind):
    """The nested layout of ``cfg``, ``sts`` or ``events`` for ``regmap`` (None when empty)."""
    tree = {}
    for reg, f in _leaves(regmap, kind):
        _insert(tree, reg.path + ((f.name,) if kind != "events" else ()),
                f.incrwidth if kind == "events" else f.width)
    if kind == "cfg":
        for reg in regmap:
            for f in reg.fields:
                for flag in ("swacc", "swmod"):
                    if getattr(f, flag):
                        _insert(tree, reg.path + (f"{f.name}_{flag}",), 1)
    return _to_layout(tree) if tree else None


def _leaves(regmap, kind):
    for reg in regmap:
        for f in reg.fields:
            if kind == "cfg" and f.sw_writable and f.hw == "r":
                yield reg, f
            elif kind == "sts" and f.hw == "w" and reg.path != LAYOUT_HASH_PATH:
                yield reg, f
            elif kind == "events" and f.counter:
                if len(reg.fields) != 1 or f.width != 32:
                    raise ValueError(f"counter register {reg.dotted} must hold one 32-bit field")
                yield reg, f


def struct_value(layout, values, path=()):
    """One whole-vector value of ``layout`` from ``values`` ({path tuple: Value}; missing
    leaves are 0, a narrower value is zero-extended to its leaf, a wider one truncated).
    Assign struct ports with this, not member by member: Amaranth turns member assignments
    into slice writes, on which Icarus' always_comb re-triggers itself forever."""
    if isinstance(layout, type) and issubclass(layout, (data.Struct, data.Union)):
        layout = data.Layout.cast(layout)
    if isinstance(layout, data.StructLayout):
        parts, pos = [], 0
        for name, f in sorted(layout, key=lambda item: item[1].offset):
            if f.offset > pos:
                parts.append(C(0, f.offset - pos))
            parts.append(struct_value(f.shape, values, path + (name,)))
            pos = f.offset + Shape.cast(f.shape).width
        if layout.size > pos:
            parts.append(C(0, layout.size - pos))
        return Cat(*parts)
    if isinstance(layout, data.ArrayLayout):
        return Cat(*(struct_value(layout.elem_shape, values, path + (i,))
                     for i in range(layout.length)))
    width = Shape.cast(layout).width
    v = values.get(path)
    if v is None:
        return C(0, width)
    v = Value.cast(v)
    if len(v) >= width:
        return v[:width]
    # Zero-extend explicitly: inside a Cat a narrow value keeps its own width, which would shift
    # every later leaf (as_unsigned() does not widen).
    return Cat(v, C(0, width - len(v)))


def leaf_paths(layout, path=()):
    """Every leaf of a nested struct/array ``layout`` as a path tuple, in layout order."""
    if isinstance(layout, data.StructLayout):
        for name, f in layout:
            yield from leaf_paths(f.shape, path + (name,))
    elif isinstance(layout, data.ArrayLayout):
        for i in range(layout.length):
            yield from leaf_paths(layout.elem_shape, path + (i,))
    else:
        yield path


def sub_layout(layout, groups):
    """The members ``groups`` of struct ``layout`` (those it has) as a struct, or None."""
    have = {g: layout[g].shape for g in groups if g in layout.members}
    return data.StructLayout(have) if have else None


def view_at(view, path):
    """The member of ``view`` at ``path`` (names and indices)."""
    return _nav(view, path)


def _or_tree(terms):
    while len(terms) > 1:
        terms = [terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0] if terms else C(0, 32)


def _nav(view, keys):
    for k in keys:
        view = view[k]
    return view


def read_clear_counter(m, inc, clear, width=32, name="count"):
    """A saturating counter of 1-bit increments ``inc``, cleared by ``clear`` (a read); returns
    the count (what the read returns, the value before the clear).

    Built in the ECP5's own terms, with no logic beside its carry chain (the map has about a
    hundred counters; yosys-only, W=4 core with the board's 37 live counters: 6,813 -> 5,384
    LUT4, about 39 per counter): the clear is the flip-flops' synchronous reset, saturation
    their clock enable (an increment that would wrap is not taken, so the count stays at
    all-ones), and the increment of the clear's cycle waits in ``pend``, the adder's carry
    input, to be counted in the next cycle, so no event is lost. ``pend`` is set only when the
    count has just been cleared (so the two never overflow together), and the value read is
    ``count | pend`` (one LUT4): a clear in the very next cycle returns the waiting increment
    instead of dropping it.
    """
    count = Signal(width, name=name)
    pend = Signal(name=f"{name}_pend")
    total = Signal(width + 1, name=f"{name}_next")
    value = Signal(width, name=f"{name}_value")
    m.d.comb += [total.eq(count + inc + pend), value.eq(count | pend)]
    m.d.sync += pend.eq(clear & inc)
    with m.If(clear):
        m.d.sync += count.eq(0)
    with m.Elif(~total[width]):
        m.d.sync += count.eq(total[:width])
    return value


class CsrBlock(wiring.Component):
    """Register storage, decode and counters for the TunnelNIC map; see module docstring.

    Parameters
    ----------
    params : dict
        Register map parameters (``W``, ``P``, ``N``, ``POOL``, ``WINDOW``, ``OPAQUE``); missing
        ones take :data:`tunnelnic.regmap.DEFAULTS`.
    counters : str
        ``"ff"`` (flip-flop counters) or ``"block"`` (a :class:`hw.counter_bank.CounterBank`).
    """

    def __init__(self, params=None, *, counters="ff"):
        from tunnelnic.regmap import compile_map
        if counters not in ("ff", "block"):
            raise ValueError(f"counters must be 'ff' or 'block', not {counters!r}")
        self.counters = counters
        self.read_latency = 3 if counters == "block" else 1
        self.regmap = compile_map(params)
        self.addr_width = max(12, (self.regmap.size - 1).bit_length())
        members = {"bus": In(AxiLiteSignature(self.addr_width))}
        for kind, flow in (("cfg", Out), ("sts", In), ("events", In)):
            layout = map_layout(self.regmap, kind)
            if layout is not None:
                members[kind] = flow(layout)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.axil = axil = AxiLiteSlave(self.addr_width, read_latency=self.read_latency)
        wiring.connect(m, wiring.flipped(self.bus), axil.bus)
        port = axil.reg
        word_addr = port.addr[2:]
        bytemask = Cat(b.replicate(8) for b in port.w_strb)
        wmasked = Signal(32)

        r_data = Signal(32)
        err = Signal()
        m.d.comb += [port.r_data.eq(r_data), port.err.eq(err)]

        # Pure expressions (no default-then-override comb processes): Icarus' always_comb
        # can loop forever on those when they feed a register's next-value logic.
        readable_hits, writable_hits, read_terms = [], [], []
        self._bank_counters = []          # (selected, increment) of each counter, counters="block"

        for reg in self.regmap:
            selected = word_addr == (reg.address >> 2)
            value = Signal(32, name=f"rd_{reg.dotted.replace('.', '_').replace('[', '_').replace(']', '')}")
            pieces = []
            for f in reg.fields:
                sig = self._field_signal(m, reg, f, selected, port, bytemask)
                if f.sw_readable and sig is not None:
                    pieces.append((f.lsb, sig))
            # One Cat (not slice assignments): Icarus loops on partial writes in always_comb.
            parts, pos = [], 0
            for lsb, sig in sorted(pieces, key=lambda p: p[0]):
                if lsb > pos:
                    parts.append(C(0, lsb - pos))
                parts.append(sig)
                pos = lsb + len(sig)
            if parts:
                m.d.comb += value.eq(Cat(*parts))
            if reg.readable:
                readable_hits.append(selected)
                read_terms.append(Mux(selected, value, 0))
            if reg.writable:
                writable_hits.append(selected)

        read_value = Signal(32)
        hit_err = Signal()
        m.d.comb += [
            read_value.eq(_or_tree(read_terms)),
            hit_err.eq(Mux(port.r_stb, ~Cat(*readable_hits).any(), ~Cat(*writable_hits).any())),
        ]
        with m.If(port.r_stb | port.w_stb):
            m.d.sync += [r_data.eq(Mux(hit_err, 0, read_value)), err.eq(hit_err)]
        if self._bank_counters:
            self._counter_bank(m, port)
            with m.If(m.submodules.counters.rd_valid):
                m.d.sync += r_data.eq(m.submodules.counters.rd_data)
        return m

    def _counter_bank(self, m, port):
        """The counters in block RAM: a read of counter k takes k's drain slot; the bank's count
        reaches ``r_data`` 3 cycles after ``r_stb`` (the other registers' reads wait as long)."""
        sels = [sel for sel, _ in self._bank_counters]
        incs = [inc for _, inc in self._bank_counters]
        # Spacing of r_stb: AxiLiteSlave, read_latency + 3 cycles.
        m.submodules.counters = bank = CounterBank(
            [len(inc) for inc in incs], read_spacing=self.read_latency + 3)
        # The counter's index from the one-hot selects, a wide OR per index bit (shallow, no
        # priority chain; and no OR tree of Mux(sel, k, 0) constants: that crashed yosys's ABC).
        index = Cat(Cat(C(0, 1), *(sel for k, sel in enumerate(sels) if k >> b & 1)).any()
                    for b in range(len(bank.rd_idx)))
        for k, inc in enumerate(incs):
            m.d.comb += bank.inc[f"c{k}"].eq(inc)
        m.d.comb += [bank.rd_stb.eq(port.r_stb & Cat(*sels).any()), bank.rd_idx.eq(index)]

    def _field_signal(self, m, reg, f, selected, port, bytemask):
        """Storage/logic of one field; returns the value software reads (or None)."""
        keys = reg.path + (f.name,)
        ok_read = selected & port.r_stb & reg.readable
        ok_write = selected & port.w_stb & reg.writable
        if f.swacc:
            m.d.comb += _nav(self.cfg, reg.path + (f"{f.name}_swacc",)).eq(ok_read)
        if f.swmod:
            m.d.comb += _nav(self.cfg, reg.path + (f"{f.name}_swmod",)).eq(ok_write)
        if f.counter and f.rclr and self.counters == "block":
            self._bank_counters.append((selected, _nav(self.events, reg.path)))
            return None
        if f.counter and f.rclr and f.incrwidth == 1:
            return read_clear_counter(m, _nav(self.events, reg.path), ok_read,
                                      name=f"cnt_{'_'.join(map(str, reg.path))}")
        if f.counter:
            inc = _nav(self.events, reg.path)
            count = Signal(32, name=f"cnt_{'_'.join(map(str, reg.path))}")
            total = Signal(33)
            m.d.comb += total.eq(count + inc)
            with m.If(ok_read & f.rclr):
                m.d.sync += count.eq(inc)
            with m.Elif(total[32]):
                m.d.sync += count.eq(0xFFFF_FFFF)
            with m.Else():
                m.d.sync += count.eq(total[:32])
            return count
        if reg.path == LAYOUT_HASH_PATH:
            return Const(self.regmap.layout_hash, 32)
        if f.hw == "w":
            return _nav(self.sts, keys)
        if not f.sw_writable:
            return Const(f.reset or 0, f.width)
        store = Signal(f.width, init=f.reset or 0, name=f"reg_{'_'.join(map(str, keys))}")
        if f.hw == "r":
            m.d.comb += _nav(self.cfg, keys).eq(store)
        if f.singlepulse:
            m.d.sync += store.eq(0)
        with m.If(ok_write):
            mask = bytemask[f.lsb:f.lsb + f.width]
            new = (store & ~mask) | (port.w_data[f.lsb:f.lsb + f.width] & mask)
            m.d.sync += store.eq(new)
        return store if f.sw_readable and not f.singlepulse else Const(0, f.width)
