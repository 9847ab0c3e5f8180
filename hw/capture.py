"""Capturing header bytes and checksums at run-time offsets from a beat stream.

These are logic builders used inside a stage of a pipeline (not components): the stage holds
one beat (``lanes``, already zeroed past ``keep``), its index within the packet (``beat``), a
``take`` strobe (the beat leaves the stage this cycle) and ``first`` (it is the packet's first
beat). Region start offsets are dynamic but must be known while the region's first beat is in
the stage; bytes never seen (past the end of the frame) read as zero.

Cost per captured byte: one compare of a small constant against ``beat - start // W`` and a
W:1 lane multiplexer shared by every byte at the same ``start % W`` phase.
Region lane masks (:func:`region_lanes`, used by :func:`region_sum` and RSC's ingress)
compare the beat index once per bound and the lane against the bound's remainder, the latter
as plain logic (:mod:`hw.compare`).
"""

from amaranth import *

from .checksum import beat_words
from .compare import gt_const, le_const

__all__ = ["capture_region", "capture_selects", "capture_byte", "region_lanes", "region_sum",
           "beat_index_bits"]


def beat_index_bits(width, limit=1024):
    """Width of a saturating beat counter that can address ``limit`` bytes plus margin."""
    return (limit // width + 2).bit_length()


def capture_selects(m, *, width, count, start_low, rel, hot_now=False, name="sel"):
    """What :func:`capture_region` decides per byte, computed a stage early and registered.

    ``start_low`` is ``start % W`` and ``rel`` is ``beat - start // W`` of the beat that enters
    the capturing stage next cycle (every stage register is loaded every cycle). Returns
    ``(hot, carry, lane)``: registers of ``rel == q`` for each beat ``q`` the region can touch,
    and per byte phase whether it wraps into the next beat and its lane, so the capturing stage
    holds no compare and no adder: a byte's hit is one LUT of registers, its lane multiplexer
    has registered selects. With ``hot_now``, ``rel`` belongs to the capturing stage itself
    (registered by the caller) and ``hot`` is decoded from it there.
    """
    lw = (width - 1).bit_length()
    beats = (count - 1) // width + 2
    hot = Signal(beats, name=f"{name}_hot")
    decode = hot.eq(Cat(*(rel == q for q in range(beats))))
    if hot_now:
        m.d.comb += decode
    else:
        m.d.sync += decode
    carry, lane = [], []
    for kr in range(min(width, count)):
        s = Value.cast(start_low)[:lw] + kr
        c = Signal(name=f"{name}_c{kr}")
        ln = Signal(lw, name=f"{name}_l{kr}")
        m.d.sync += [c.eq(s[lw]), ln.eq(s[:lw])]
        carry.append(c)
        lane.append(ln)
    return hot, carry, lane


def capture_byte(m, *, hit, byte, first, take, name):
    """One captured byte: ``(reg, nxt)``. ``nxt`` is what the register holds once this beat is
    taken (``byte`` on a hit, 0 on a packet's first beat, else the held value), so a consumer
    can latch a whole region in the cycle its last byte arrives; ``take`` only enables the
    register, keeping the take decision out of series with the compare and lane multiplexer."""
    reg = Signal(8, name=name)
    nxt = Signal(8, name=f"{name}_next")
    m.d.comb += nxt.eq(Mux(hit, byte, Mux(first, 0, reg)))
    with m.If(take):
        m.d.sync += reg.eq(nxt)
    return reg, nxt


def capture_region(m, *, width, count, start, beat, lanes, take, first, gate=1, rel=None,
                   pre=None, lane_stage=False, name="cap"):
    """Capture bytes ``[start, start + count)`` of the packet.

    Returns ``(regs, nexts)``: the byte registers (valid after the region's last beat has been
    taken, for the rest of the packet) and their next values (valid in the cycle a beat is
    taken, so a decision taken with that beat can include it; meaningless in other cycles).
    ``rel``, when given, is ``beat - start // W`` computed (and registered) by the caller;
    ``pre``, when given, is :func:`capture_selects` of the same region (``start`` and ``rel``
    then unused). ``gate`` must be high for a byte to be captured (e.g. "the start offset is
    known yet"). ``take`` and ``first`` may be lists (one copy per 8 bytes, round robin), so a
    large region does not hang on one high-fanout net. With ``lane_stage`` the lane
    multiplexers and byte hits are registered first and the bytes captured a cycle later
    (``take``/``first`` delayed to match): ``nexts`` are then valid the cycle *after* the take.
    """
    lw = (width - 1).bit_length()
    takes = take if isinstance(take, (list, tuple)) else [take]
    firsts = first if isinstance(first, (list, tuple)) else [first]
    if pre is None:
        start = Value.cast(start)
        sb = start[lw:] if len(start) > lw else Const(0, 1)
        sr = start[:lw]
        if rel is None:
            rel = Signal(signed(max(len(beat), len(sb)) + 2), name=f"{name}_rel")
            m.d.comb += rel.eq(beat - sb)
    if lane_stage and pre is None:
        raise ValueError("lane_stage needs pre (registered selects)")
    if lane_stage:
        def delayed(v, what, n):
            d = Signal(name=f"{name}_d{what}{n}")
            m.d.sync += d.eq(v)
            return d
        takes = [delayed(t, "take", n) for n, t in enumerate(takes)]
        firsts = [delayed(f, "first", n) for n, f in enumerate(firsts)]
    lane_array = Array(lanes)
    phase = {}
    regs, nexts = [], []
    for k in range(count):
        kq, kr = divmod(k, width)
        take, first = takes[(k // 8) % len(takes)], firsts[(k // 8) % len(firsts)]
        if pre is not None:
            hot, pre_carry, pre_lane = pre
            if kr not in phase:
                byte = Signal(8, name=f"{name}_lane{kr}")
                stage = m.d.sync if lane_stage else m.d.comb
                stage += byte.eq(lane_array[pre_lane[kr]])
                phase[kr] = (pre_carry[kr], byte)
            carry, byte = phase[kr]
            hit = Signal(name=f"{name}_hit{k}")
            stage = m.d.sync if lane_stage else m.d.comb
            stage += hit.eq(gate & Mux(carry, hot[kq + 1], hot[kq]))
        elif kr not in phase:
            s = Signal(lw + 1, name=f"{name}_ph{kr}")
            m.d.comb += s.eq(sr + kr)
            byte = Signal(8, name=f"{name}_lane{kr}")
            m.d.comb += byte.eq(lane_array[s[:lw]])
            phase[kr] = (s[lw], byte)
        if pre is None:
            carry, byte = phase[kr]
            hit = Signal(name=f"{name}_hit{k}")
            m.d.comb += hit.eq(gate & Mux(carry, rel == kq + 1, rel == kq))
        reg, nxt = capture_byte(m, hit=hit, byte=byte, first=first, take=take, name=f"{name}{k}")
        regs.append(reg)
        nexts.append(nxt)
    return regs, nexts


def region_lanes(m, *, width, start, end, beat, name="region"):
    """Which lanes of beat ``beat`` hold bytes ``[start, end)`` of the packet: a list of W
    1-bit values (combinational). The beat index is compared once per bound (``beat`` against
    ``start // W`` and ``end // W``: one ordered compare and one equality each), the lane
    against the remainders as constant compares in plain logic (:mod:`hw.compare`), instead of
    each byte's position against both bounds (2 W ordered compares of full width)."""
    lw = (width - 1).bit_length()
    start, end = Value.cast(start), Value.cast(end)
    sb, sr = start[lw:], start[:lw]
    eb, er = end[lw:], end[:lw]
    after_s, at_s = Signal(name=f"{name}_after_s"), Signal(name=f"{name}_at_s")
    before_e, at_e = Signal(name=f"{name}_before_e"), Signal(name=f"{name}_at_e")
    m.d.comb += [after_s.eq(beat > sb), at_s.eq(beat == sb),
                 before_e.eq(beat < eb), at_e.eq(beat == eb)]
    return [(after_s | (at_s & le_const(sr, i))) & (before_e | (at_e & gt_const(er, i)))
            for i in range(width)]


def region_sum(m, *, width, start, end, beat, data, take, first, gate=1, name="sum"):
    """Running (unfolded) one's-complement sum of bytes ``[start, end)`` of the packet.

    Two registered steps, so no cycle holds a compare and an adder in series: the cycle a beat
    is taken, its lane mask (beat index against ``start // W`` and ``end // W``, lane against
    the remainders) is registered with the beat; the next cycle the masked bytes form W/2
    words and each word lane adds its word into its own 21-bit accumulator
    (exact for regions up to 1024 bytes). Returns the W/2 accumulators' next values, valid the
    cycle *after* the region's last beat was taken; add them (:func:`hw.checksum.wide_sum`) and
    fold. ``gate`` low excludes the beat.
    """
    mask = Signal(width, name=f"{name}_mask")
    lanes = region_lanes(m, width=width, start=start, end=end, beat=beat, name=name)
    m.d.sync += mask.eq(Cat(*(gate & lane for lane in lanes)))
    k_data = Signal(8 * width, name=f"{name}_k_data")
    k_take, k_first = Signal(name=f"{name}_k_take"), Signal(name=f"{name}_k_first")
    m.d.sync += [k_data.eq(data), k_take.eq(take), k_first.eq(first)]
    nexts = []
    for k, word in enumerate(beat_words(k_data, mask, width)):
        acc = Signal(21, name=f"{name}_acc{k}")
        nxt = Signal(21, name=f"{name}_acc{k}_next")
        m.d.comb += nxt.eq(Mux(k_first, 0, acc) + word)
        with m.If(k_take):
            m.d.sync += acc.eq(nxt)
        nexts.append(nxt)
    return nexts
