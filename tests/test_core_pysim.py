"""The driver configures the NIC core in amaranth.sim and the datapath follows: a VXLAN
profile loaded by preset makes VXLAN packets match (tunnel, profile hit), disabling it through
the driver stops the matching, and every packet passes through unchanged."""

from amaranth.sim import Simulator

from hw.core import NicCore
from tunnelnic.driver import Nic
from tunnelnic.driver.pysim import PysimAxiLiteTransport
from tunnelnic.packets import build_packet


async def send_packet(ctx, dut, pkt):
    """Send ``pkt`` on rx_i while collecting rx_o (ready always high); returns output bytes."""
    beats = [pkt[i:i + 8] for i in range(0, len(pkt), 8)]
    out = bytearray()
    ctx.set(dut.rx_o.ready, 1)
    n = 0
    idle = 0
    while idle < 100:
        if n < len(beats):
            b = beats[n]
            ctx.set(dut.rx_i.p.data, int.from_bytes(b.ljust(8, b"\0"), "little"))
            ctx.set(dut.rx_i.p.keep, (1 << len(b)) - 1)
            ctx.set(dut.rx_i.p.last, n == len(beats) - 1)
            ctx.set(dut.rx_i.valid, 1)
        else:
            ctx.set(dut.rx_i.valid, 0)
        sent = ctx.get(dut.rx_i.valid) and ctx.get(dut.rx_i.ready)
        if ctx.get(dut.rx_o.valid):
            keep = ctx.get(dut.rx_o.p.keep)
            out += ctx.get(dut.rx_o.p.data).to_bytes(8, "little")[:bin(keep).count("1")]
            if ctx.get(dut.rx_o.p.last):
                await ctx.tick()
                ctx.set(dut.rx_i.valid, 0)
                return bytes(out)
        await ctx.tick()
        n += bool(sent)
        idle = idle + 1 if n >= len(beats) else 0
    raise AssertionError("no packet came out")


def test_profile_enable_controls_matching():
    dut = NicCore(8, profiles=8)
    vx = bytes(build_packet("vxlan", payload=bytes(range(40)), flow=5))
    results = {}

    async def bench(ctx):
        await ctx.tick().repeat(2)
        nic = Nic(PysimAxiLiteTransport(ctx, dut.bus))
        await nic.connect()
        await nic.load_profile(0, "vxlan")
        await nic.counters()
        assert await send_packet(ctx, dut, vx) == vx
        await ctx.tick().repeat(10)
        results["enabled"] = (await nic.counters())["rx_parser_stats"]
        await nic.enable_profile(0, False)
        assert await send_packet(ctx, dut, vx) == vx
        await ctx.tick().repeat(10)
        results["disabled"] = (await nic.counters())["rx_parser_stats"]

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(bench)
    sim.run()
    on, off = results["enabled"], results["disabled"]
    assert (on["packets"], on["tunnel"], on["profile_hits[0]"], on["other"]) == (1, 1, 1, 0), on
    assert (off["packets"], off["tunnel"], off["profile_hits[0]"], off["other"]) == (1, 0, 0, 1)
    assert off["reason_not_tcp"] == 1


def test_board_mac_stats_are_counted():
    """With ``board=True`` the board's MAC statistics pulses, on ``ext_events.mac[n]``, reach
    the counters ``mac[n]`` of the register map (each port its own, nothing else counted)."""
    from amaranth.lib import data
    from hw.mac import MAC_STATS
    dut = NicCore(8, parser=False, board=True)
    layout = data.Layout.cast(dut.ext_layouts["events"])
    pulses = {(0, "rx_good"): 5, (0, "tx_frame"): 2, (1, "rx_fcs_error"): 3,
              (1, "rx_fifo_drop"): 1}
    got = {}

    async def bench(ctx):
        await ctx.tick().repeat(2)
        nic = Nic(PysimAxiLiteTransport(ctx, dut.bus))
        await nic.connect()
        for n in range(max(pulses.values())):
            ports = [{f: int(n < pulses.get((port, f), 0)) for f in MAC_STATS.members}
                     for port in range(2)]
            ctx.set(dut.ext_events, layout.const({"mac": ports}))
            await ctx.tick()
        ctx.set(dut.ext_events, layout.const({}))
        await ctx.tick().repeat(2)
        got.update((await nic.counters(["mac"]))["mac"])

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(bench)
    sim.run()
    names = {f"[{port}].{f}" for port in range(2) for f in MAC_STATS.members}
    assert set(got) == names, sorted(got)
    for port in range(2):
        for f in MAC_STATS.members:
            assert got[f"[{port}].{f}"] == pulses.get((port, f), 0), (port, f)
