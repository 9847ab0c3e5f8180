"""An AXI-Stream-named Verilog top level around any Amaranth component.

cocotbext-axi binds buses by name (``s_axis_tdata``, ``m_axis_tready``...), while Amaranth
flattens a stream payload Struct into one wide port. :class:`AxisTop` bridges the two: every
stream member of the component becomes an AXI-Stream port set (``data``->``tdata``,
``keep``->``tkeep``, ``last``->``tlast``, every other payload field, such as ``meta``,
concatenated into ``tuser`` in layout order), and every other port keeps its path name joined
with ``__`` (``cfg__addr``).

Naming: a stream flowing into the component named ``i`` is ``s_axis``, one named ``o`` is
``m_axis``; any other name ``x`` becomes ``s_axis_x`` / ``m_axis_x``.
"""

import re

from amaranth import *
from amaranth.back import verilog
from amaranth.lib import data, stream, wiring

__all__ = ["AxisTop", "to_verilog", "axis_prefix"]


def axis_prefix(name, flow):
    base = "s_axis" if flow == wiring.In else "m_axis"
    return base if name in ("i", "o") else f"{base}_{name}"


def _payload_fields(payload):
    """(tdata, tkeep, tlast, tuser) values of a packet payload view (tuser may be None)."""
    layout = payload.shape()
    if not isinstance(layout, data.StructLayout) or "data" not in layout.members:
        # A non-packet stream: everything is tdata.
        return Value.cast(payload), None, None, None
    user = [Value.cast(payload[name]) for name in layout.members
            if name not in ("data", "keep", "last")]
    return (Value.cast(payload.data),
            Value.cast(payload.keep) if "keep" in layout.members else None,
            Value.cast(payload.last) if "last" in layout.members else None,
            Cat(*user) if user else None)


class AxisTop(Elaboratable):
    """Elaboratable top with flat, AXI-Stream-named ports around ``dut``; see module docstring."""

    def __init__(self, dut):
        self.dut = dut
        self._ports = []
        self._conns = []  # (flow, port_signal, dut_value)
        for name, member in dut.signature.members.items():
            self._add(name, member, getattr(dut, name))

    def _add(self, path, member, value):
        if member.is_port:
            sig = Signal(Shape.cast(member.shape).width, name=path)
            self._ports.append(sig)
            self._conns.append((member.flow, sig, value))
            return
        sig_obj = member.signature
        if isinstance(sig_obj, stream.Signature):
            flow = member.flow
            prefix = axis_prefix(path, flow)
            tdata, tkeep, tlast, tuser = _payload_fields(value.payload)
            pairs = [("tdata", tdata), ("tkeep", tkeep), ("tlast", tlast), ("tuser", tuser)]
            for suffix, v in pairs:
                if v is None:
                    continue
                s = Signal(len(v), name=f"{prefix}_{suffix}")
                self._ports.append(s)
                self._conns.append((flow, s, v))
            valid = Signal(name=f"{prefix}_tvalid")
            ready = Signal(name=f"{prefix}_tready")
            self._ports += [valid, ready]
            self._conns.append((flow, valid, value.valid))
            # ready flows against the stream.
            self._conns.append((wiring.Out if flow == wiring.In else wiring.In, ready, value.ready))
            return
        for name, sub in sig_obj.members.items():
            sub_flow = sub if member.flow == wiring.Out else sub.flip()
            self._add(f"{path}__{name}", sub_flow, getattr(value, name))

    def ports(self):
        return list(self._ports)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        for flow, sig, value in self._conns:
            if flow == wiring.In:
                m.d.comb += value.eq(sig)
            else:
                m.d.comb += sig.eq(Value.cast(value))
        return m


def to_verilog(dut, name="top"):
    """Verilog text for ``AxisTop(dut)``, made safe for Icarus.

    Icarus does not run ``always @*`` blocks at time 0 (amaranth issue 1629), which can leave
    combinational logic that depends on no input X forever. Yosys already makes every such
    block read a dummy register; toggling that register at 1 ns evaluates them all once.
    (Rewriting the blocks as ``always_comb`` also works, but makes Icarus re-run blocks that
    assign part-selects many times per step: ten times slower or worse.)
    """
    top = AxisTop(dut)
    text = verilog.convert(top, name=name, ports=top.ports(), emit_src=False)
    return re.sub(r"(reg (\\\$auto\$verilog_backend\S*dump_module\$\d+) += 0;)",
                  r"\1\n  initial #1 \2 = 1'h1;", text)
