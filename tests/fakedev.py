"""An in-memory device that answers like the CSR block, built from the compiled register map
(for driver unit tests without a simulator)."""

from tunnelnic.driver.transport import BusError, Transport
from tunnelnic.regmap import compile_map


class FakeDevice(Transport):
    def __init__(self, params=None, *, magic=None, version=None, layout=None):
        self.rm = compile_map(params)
        self.mem = {r.address: r.reset_value() for r in self.rm}
        self.mem[self.rm["id.layout"].address] = self.rm.layout_hash if layout is None else layout
        if magic is not None:
            self.mem[0] = magic
        if version is not None:
            self.mem[4] = version
        self.writes = []

    async def read(self, addr):
        reg = self.rm.by_address.get(addr)
        if reg is None or not reg.readable:
            raise BusError(f"read 0x{addr:x}")
        value = self.mem[addr]
        if reg.fields[0].counter:
            self.mem[addr] = 0
        return sum(value & f.mask for f in reg.fields if f.sw_readable and not f.singlepulse)

    async def write(self, addr, value):
        reg = self.rm.by_address.get(addr)
        if reg is None or not reg.writable:
            raise BusError(f"write 0x{addr:x}")
        self.writes.append((addr, value))
        mask = sum(f.mask for f in reg.fields if f.sw_writable)
        self.mem[addr] = (self.mem[addr] & ~mask) | (value & mask)
