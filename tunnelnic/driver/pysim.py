"""amaranth.sim: the driver's transport on a component's AXI4-Lite ``bus`` inside an async
testbench (``ctx``), for quick host tests without cocotb."""

from .transport import BusError, Transport

__all__ = ["PysimAxiLiteTransport"]


class PysimAxiLiteTransport(Transport):
    def __init__(self, ctx, bus, timeout=100):
        self.ctx, self.bus, self.timeout = ctx, bus, timeout

    async def _wait(self, signal):
        for _ in range(self.timeout):
            await self.ctx.tick()
            if self.ctx.get(signal):
                return
        raise TimeoutError("AXI4-Lite slave did not answer")

    async def read(self, addr):
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.araddr, addr)
        ctx.set(bus.arvalid, 1)
        ctx.set(bus.rready, 1)
        while not ctx.get(bus.arready):
            await ctx.tick()
        await ctx.tick()
        ctx.set(bus.arvalid, 0)
        while not ctx.get(bus.rvalid):
            await ctx.tick()
        data, resp = ctx.get(bus.rdata), ctx.get(bus.rresp)
        await ctx.tick()
        ctx.set(bus.rready, 0)
        if resp:
            raise BusError(f"read of 0x{addr:04x} answered {resp:#b}")
        return data

    async def write(self, addr, value):
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.awaddr, addr)
        ctx.set(bus.wdata, value)
        ctx.set(bus.wstrb, 0xF)
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.wvalid, 1)
        ctx.set(bus.bready, 1)
        while not (ctx.get(bus.awready) and ctx.get(bus.wready)):
            await ctx.tick()
        await ctx.tick()
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        while not ctx.get(bus.bvalid):
            await ctx.tick()
        resp = ctx.get(bus.bresp)
        await ctx.tick()
        ctx.set(bus.bready, 0)
        if resp:
            raise BusError(f"write of 0x{addr:04x} answered {resp:#b}")
