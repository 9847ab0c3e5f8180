"""cocotb-side helpers shared by every stream test bench (and the pcap CLI commands).

:class:`StreamBench` owns the clock, the reset and the cocotbext-axi bus models of an
:class:`~tunnelnic.rtlsim.wrapper.AxisTop`, and adds random valid pauses on every source and
random ready backpressure on every sink unless told not to.
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

__all__ = ["random_pauses", "StreamBench", "frame_bytes", "frame_meta"]


def random_pauses(rng, probability):
    """Endless pause pattern for cocotbext-axi: True (pause) with ``probability`` per cycle,
    in bursts, so both single-cycle and longer stalls occur."""
    while True:
        if rng.random() < probability:
            for _ in range(rng.choice((1, 1, 1, 2, 3, 7))):
                yield True
        else:
            yield False


class StreamBench:
    """Clock, reset and AXI-Stream models for a wrapped DUT.

    ``sources``/``sinks`` are wrapper prefixes (``s_axis``, ``m_axis``...). With ``stalls`` the
    sources pause at random and the sinks deassert ready at random (seeded by ``seed``).
    """

    def __init__(self, dut, *, sources=("s_axis",), sinks=("m_axis",), stalls=True, seed=0,
                 period_ns=8, pause=0.2, backpressure=0.3):
        self.dut = dut
        # Hold reset from time 0, before any bus model drives anything.
        dut.rst.value = 1
        self.period_ns = period_ns
        self.clock = Clock(dut.clk, period_ns, unit="ns")
        cocotb.start_soon(self.clock.start())
        self.rng = random.Random(seed)
        self.source = {}
        self.sink = {}
        for name in sources:
            self.source[name] = AxiStreamSource(AxiStreamBus.from_prefix(dut, name), dut.clk,
                                                dut.rst)
        for name in sinks:
            self.sink[name] = AxiStreamSink(AxiStreamBus.from_prefix(dut, name), dut.clk,
                                            dut.rst)
        self.set_stalls(stalls, pause, backpressure)

    def set_stalls(self, enabled, pause=0.2, backpressure=0.3):
        """Random pauses on (``enabled``) or off. Turning them off also clears the models'
        ``pause``: cocotbext-axi only stops the generator, and a model left paused by its last
        value would hold ``tvalid`` (source) or ``tready`` (sink) low for good."""
        for model, prob in ([(s, pause) for s in self.source.values()] +
                            [(s, backpressure) for s in self.sink.values()]):
            model.set_pause_generator(random_pauses(random.Random(self.rng.random()), prob)
                                      if enabled else None)
            if not enabled:
                model.pause = False

    async def reset(self, cycles=4):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    async def cycles(self, n):
        await ClockCycles(self.dut.clk, n)

    async def send(self, packet, meta=None, name="s_axis"):
        """Queue one packet (bytes) with optional per-packet ``meta`` (tuser) integer."""
        await self.source[name].send(AxiStreamFrame(bytes(packet), tuser=meta))

    async def recv(self, name="m_axis", timeout_cycles=None):
        """Receive one packet as an AxiStreamFrame (see :func:`frame_bytes`/:func:`frame_meta`)."""
        if timeout_cycles is None:
            return await self.sink[name].recv()
        from cocotb.triggers import with_timeout
        return await with_timeout(self.sink[name].recv(), timeout_cycles * self.period_ns, "ns")


def frame_bytes(frame):
    return bytes(frame.tdata)


def frame_meta(frame):
    """The frame's tuser, checked to be constant over the packet (first beat's value)."""
    user = frame.tuser
    if isinstance(user, list):
        if any(u != user[0] for u in user):
            raise AssertionError("meta (tuser) changed within a packet")
        return user[0] if user else 0
    return user if user is not None else 0
