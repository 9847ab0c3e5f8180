"""An I/O-reducing wrapper that lets a bare core be synthesized and timed on a real package.

A core's ports (a 64-bit stream, a 1000-bit parse record...) would not fit a package's pins, and
a core whose outputs go nowhere is optimised away. :class:`SynthHarness` keeps the logic alive and
measures only the core's internal timing:

* every input bit of the core is driven by one flip-flop of a shift register clocked in the
  harness domain and fed from a single pin, so every input is an independent register (synthesis
  cannot prove two inputs equal and fold logic away);
* every output bit is registered in groups: each group of four outputs is XOR-reduced by one LUT
  into a flip-flop, and those flip-flops are XOR-reduced the same way, level after level, down to
  a few output pins. Every harness path is one LUT deep, so it never limits fmax;
* the core is kept as its own module (``keep_hierarchy``), so yosys reports its cells exactly,
  apart from the harness's.

Input and output registers are in the harness domain (``sync`` unless told otherwise). Ports of
the core that are not part of its signature (clock and reset of its domains) become top-level
pins: ``clk``/``rst`` for ``sync`` and ``<domain>_clk``/``<domain>_rst`` for the others.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SynthHarness", "flatten_ports"]

#: How many XOR inputs one LUT level of the output tree takes (a LUT4 XORs four bits).
FANIN = 4


def flatten_ports(component):
    """``(inputs, outputs)``: lists of the core's port signals (as Values), split by direction.

    Works for a :class:`wiring.Component` (walking its signature, flipped members included).
    """
    inputs, outputs = [], []
    for path, member, value in component.signature.flatten(component):
        if member.flow == wiring.In:
            inputs.append(Value.cast(value))
        else:
            outputs.append(Value.cast(value))
    return inputs, outputs


class SynthHarness(wiring.Component):
    """Wrap ``core`` (a :class:`wiring.Component`) so only ``n_out`` + 1 pins remain.

    Parameters
    ----------
    core : wiring.Component
        The block to measure.
    domain : str
        The clock domain of the input shift register and the output XOR tree.
    n_out : int
        Output pins the XOR tree ends on.
    """

    def __init__(self, core, *, domain="sync", n_out=4):
        if not isinstance(core, wiring.Component):
            raise TypeError(f"the synthesis harness wraps a wiring.Component, not {core!r}; "
                            "a board top (platform-aware elaboratable) is built with "
                            "`tunnelnic build`")
        if n_out < 1:
            raise ValueError(f"n_out must be at least 1, not {n_out}")
        self.core = core
        self.domain = domain
        self._n_out = n_out
        self.inputs, self.outputs = flatten_ports(core)
        self.in_bits = sum(len(v) for v in self.inputs)
        self.out_bits = sum(len(v) for v in self.outputs)
        super().__init__({"sin": In(1), "sout": Out(n_out)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        sync = m.d[self.domain]

        # Inputs: one shift register, one flip-flop per input bit.
        if self.in_bits:
            chain = Signal(self.in_bits, attrs={"keep": 1})
            sync += chain.eq(Cat(self.sin, chain[:-1]))
            pos = 0
            for value in self.inputs:
                m.d.comb += value.eq(chain[pos:pos + len(value)])
                pos += len(value)

        # Outputs: a registered XOR tree, FANIN bits per LUT and per level.
        bits = [b for value in self.outputs for b in value]
        if not bits:
            m.d.comb += self.sout.eq(0)
            return m
        level = 0
        while len(bits) > self._n_out:
            groups = [bits[i:i + FANIN] for i in range(0, len(bits), FANIN)]
            regs = Signal(len(groups), name=f"xor_l{level}", attrs={"keep": 1})
            for i, group in enumerate(groups):
                sync += regs[i].eq(Cat(*group).xor())
            bits = list(regs)
            level += 1
        out = Signal(self._n_out, name="xor_out", attrs={"keep": 1})
        sync += out.eq(Cat(*bits))
        m.d.comb += self.sout.eq(out)
        return m
