"""Simulation glue: present a component's ports in the shapes cocotb bus models bind to.

The shared :class:`tunnelnic.rtlsim.wrapper.AxisTop` flattens stream ports; :class:`FlatPorts`
sits between it and a component so that (a) struct-shaped plain ports become plain vectors and
(b) a nested non-stream interface such as the AXI4-Lite ``bus`` becomes one port per signal named
``<name>_<signal>`` (``bus_awaddr``), which ``AxiLiteBus.from_prefix(dut, "bus")`` binds to.
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FlatPorts"]


class FlatPorts(wiring.Component):
    def __init__(self, dut):
        self.dut = dut
        members = {}
        self._plan = []
        for name, member in dut.signature.members.items():
            if member.is_port:
                members[name] = member.flow(Shape.cast(member.shape).width)
                self._plan.append(("port", name, member.flow))
            elif isinstance(member.signature, stream.Signature):
                members[name] = member
                self._plan.append(("stream", name, member.flow))
            else:
                # member.signature is already flipped for an In member.
                for sub, sm in member.signature.members.items():
                    if not sm.is_port:
                        raise TypeError(f"cannot flatten nested interface {name}.{sub}")
                    members[f"{name}_{sub}"] = sm.flow(Shape.cast(sm.shape).width)
                    self._plan.append(("sub", (name, sub), sm.flow))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        for kind, name, flow in self._plan:
            if kind == "stream":
                if flow == In:
                    wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(self.dut, name))
                else:
                    wiring.connect(m, getattr(self.dut, name), wiring.flipped(getattr(self, name)))
                continue
            if kind == "port":
                outer, inner = getattr(self, name), getattr(self.dut, name)
            else:
                outer = getattr(self, f"{name[0]}_{name[1]}")
                inner = getattr(getattr(self.dut, name[0]), name[1])
            if flow == In:
                m.d.comb += inner.eq(outer)
            else:
                m.d.comb += outer.eq(inner)
        return m
