"""CSR block on AXI4-Lite: identity, every register's read/write/reset behaviour against the
compiled map, SLVERR on unmapped and read-only accesses (nothing changes), byte strobes,
clear-on-read counters that lose no event, and the singlepulse flush, all under random stalls on
every AXI channel; with the counters in flip-flops and in block RAM (``counters="block"``)."""

import random

import cocotb
import pytest
from cocotb.triggers import ClockCycles, RisingEdge

from tunnelnic.rtlsim.runner import params, run

PARAMS = {"P": 2, "N": 16}


def field_slice(layout, keys):
    """(offset, width) of a nested member of an Amaranth layout."""
    offset = 0
    for k in keys:
        f = layout[k]
        offset += f.offset
        layout = f.shape
    from amaranth import Shape
    return offset, Shape.cast(layout).width


def make_dut(counters="ff"):
    from hw.csr import CsrBlock
    from tunnelnic.driver.simtop import FlatPorts
    return FlatPorts(CsrBlock(PARAMS, counters=counters))


class TB:
    def __init__(self, dut, seed=1, stalls=True):
        from cocotb.clock import Clock
        from cocotbext.axi import AxiLiteBus, AxiLiteMaster
        from hw.csr import map_layout
        from tunnelnic.driver.transport import AxiLiteTransport
        from tunnelnic.regmap import compile_map
        from tunnelnic.rtlsim.bench import random_pauses
        self.dut = dut
        dut.rst.value = 1
        dut.events.value = 0
        dut.sts.value = 0
        cocotb.start_soon(Clock(dut.clk, 8, unit="ns").start())
        self.master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "bus"), dut.clk, dut.rst)
        rng = random.Random(seed)
        if stalls:
            for ch in (self.master.write_if.aw_channel, self.master.write_if.w_channel,
                       self.master.write_if.b_channel, self.master.read_if.ar_channel,
                       self.master.read_if.r_channel):
                ch.set_pause_generator(random_pauses(random.Random(rng.random()), 0.3))
        self.t = AxiLiteTransport(self.master)
        self.rm = compile_map(PARAMS)
        self.layouts = {k: map_layout(self.rm, k) for k in ("cfg", "sts", "events")}

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    def port_field(self, kind, keys):
        off, width = field_slice(self.layouts[kind], keys)
        return (int(getattr(self.dut, kind).value) >> off) & ((1 << width) - 1)


async def expect_error(coro):
    from tunnelnic.driver.transport import BusError
    try:
        await coro
    except BusError:
        return
    raise AssertionError("access did not answer SLVERR")


@cocotb.test()
async def identity_and_reset_values(dut):
    tb = TB(dut)
    await tb.reset()
    rm = tb.rm
    assert await tb.t.read(rm["id.magic"].address) == 0x544E4943
    assert await tb.t.read(rm["id.layout"].address) == rm.layout_hash
    caps0 = rm["id.caps0"].decode(await tb.t.read(rm["id.caps0"].address))
    assert caps0 == {"width": 8, "profiles": 2, "contexts": 16}
    for reg in rm:
        if reg.readable and not any(f.hw == "w" or f.counter for f in reg.fields) \
                and reg.path != ("id", "layout"):
            want = sum((f.reset or 0) << f.lsb for f in reg.fields
                       if f.sw_readable and not f.singlepulse)
            assert await tb.t.read(reg.address) == want, reg.dotted


@cocotb.test()
async def every_register_reads_back_and_drives_cfg(dut):
    tb = TB(dut, seed=2)
    await tb.reset()
    rng = random.Random(2)
    for reg in tb.rm:
        if not reg.writable:
            continue
        value = rng.getrandbits(32)
        await tb.t.write(reg.address, value)
        if reg.readable:
            want = sum(value & f.mask for f in reg.fields if f.sw_readable and not f.singlepulse)
            assert await tb.t.read(reg.address) == want, reg.dotted
        else:
            # A write-only register (selftest.inject_data) answers a read with an error.
            await expect_error(tb.t.read(reg.address))
        for f in reg.fields:
            if f.hw == "r" and not f.singlepulse:
                assert tb.port_field("cfg", reg.path + (f.name,)) == f.extract(value), \
                    f"cfg {reg.dotted}.{f.name}"


@cocotb.test()
async def errors_change_nothing(dut):
    tb = TB(dut, seed=3)
    await tb.reset()
    rm = tb.rm
    mapped = {r.address for r in rm}
    unmapped = [a for a in (0x018, 0x0FC, 0x104, 0x3FC, 0x404, 0x600, 0x814, 0x81C, 0xFFC)
                if a not in mapped]
    mss = rm["tso.ctrl"]
    await tb.t.write(mss.address, mss.encode({"enable": 1, "mss_default": 1000}))
    snapshot = {r.address: await tb.t.read(r.address) for r in rm
                if r.readable and not any(f.counter for f in r.fields)}
    for addr in unmapped:
        await expect_error(tb.t.read(addr))
        await expect_error(tb.t.write(addr, 0xFFFF_FFFF))
    for reg in rm:
        if not reg.writable:
            await expect_error(tb.t.write(reg.address, 0xA5A5_A5A5))
    # A counter is not cleared by a refused write.
    tb.dut.events.value = 1 << field_slice(tb.layouts["events"], ("rsc_stats", "merged"))[0]
    await ClockCycles(dut.clk, 5)
    tb.dut.events.value = 0
    merged = rm["rsc_stats.merged"].address
    await expect_error(tb.t.write(merged, 0))
    assert await tb.t.read(merged) == 5
    for addr, value in snapshot.items():
        assert await tb.t.read(addr) == value, hex(addr)
    # Byte strobes: only the strobed byte changes.
    await tb.master.write(mss.address + 2, b"\x22")
    got = mss.decode(await tb.t.read(mss.address))
    assert got == {"enable": 1, "mss_default": (1000 & ~0xFF) | 0x22}


@cocotb.test()
async def counters_clear_on_read_and_lose_nothing(dut):
    tb = TB(dut, seed=4)
    await tb.reset()
    rm = tb.rm
    rng = random.Random(4)
    regs = {r.path: r for r in rm if r.fields[0].counter}
    names = list(regs)
    incs = {p: rng.randint(1, (1 << regs[p].fields[0].incrwidth) - 1) for p in names}
    totals = dict.fromkeys(names, 0)
    sent = dict.fromkeys(names, 0)
    running = True

    async def drive():
        while running:
            on = [p for p in names if rng.random() < 0.5]
            v = 0
            for p in on:
                v |= incs[p] << field_slice(tb.layouts["events"], p)[0]
                sent[p] += incs[p]
            tb.dut.events.value = v
            await RisingEdge(dut.clk)
        tb.dut.events.value = 0

    task = cocotb.start_soon(drive())
    for _ in range(2):
        for p in names:
            totals[p] += await tb.t.read(regs[p].address)
    running = False
    await task
    await RisingEdge(dut.clk)
    for p in names:
        totals[p] += await tb.t.read(regs[p].address)
        assert totals[p] == sent[p], p
        assert await tb.t.read(regs[p].address) == 0


@cocotb.test()
async def flush_all_is_one_pulse_and_sts_reads(dut):
    tb = TB(dut, seed=5, stalls=False)
    await tb.reset()
    rm = tb.rm
    ctrl = rm["rsc.ctrl"]
    pulses = 0

    async def watch():
        nonlocal pulses
        while True:
            await RisingEdge(dut.clk)
            pulses += tb.port_field("cfg", ("rsc", "ctrl", "flush_all"))

    cocotb.start_soon(watch())
    await tb.t.write(ctrl.address, ctrl.encode({"enable": 1, "flush_all": 1}))
    await ClockCycles(dut.clk, 10)
    assert pulses == 1
    assert ctrl.decode(await tb.t.read(ctrl.address)) == {"enable": 1, "flush_all": 0}
    # Every field of the flow-table view reads what hardware drives on its sts bits.
    view = [r for r in rm.group("flow") if r.path[1] != "select"]
    want, v = {}, 0
    for reg in view:
        want[reg.dotted] = {f.name: random.getrandbits(f.width) for f in reg.fields}
        for f in reg.fields:
            offset, width = field_slice(tb.layouts["sts"], ("flow", reg.path[1], f.name))
            assert width == f.width
            v |= want[reg.dotted][f.name] << offset
    tb.dut.sts.value = v
    for reg in view:
        assert reg.decode(await tb.t.read(reg.address)) == want[reg.dotted], reg.dotted


def test_csr():
    run(make_dut, dict(PARAMS), "sim.test_csr", name="csr")


def test_csr_counter_bank():
    """The same tests with the counters in block RAM (hw.counter_bank, the board's choice)."""
    run(lambda: make_dut("block"), dict(PARAMS, counters="block"), "sim.test_csr",
        name="csr-bank")
