"""The host driver drives the simulated NIC core (cocotb), over AXI4-Lite and over the UART
bridge: identity, presets loaded through the register map, traffic through both datapaths, and
counters and classification that follow the configuration (a profile disabled by the driver
stops matching).

With the TSO engine built in, the default-MSS register set through the driver decides the
segment sizes. With RSC built in, the timeout register set through the driver decides when an
open aggregate is flushed. Profile matching through the driver is tested here and in
amaranth.sim (tests/test_core_pysim.py)."""

import cocotb
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from tunnelnic.rtlsim.runner import params, run

CLK = 125_000_000
DIVISOR = 8
PROFILES = 8


def make_dut(control, tso=False, rsc=False):
    from hw.core import NicCore
    from tunnelnic.driver.simtop import FlatPorts
    return FlatPorts(NicCore(8, profiles=PROFILES, control=control, clk_freq=CLK,
                             baud=CLK // DIVISOR, uart_timeout=400, tso=tso, rsc=rsc))


async def open_nic(dut):
    from cocotbext.axi import AxiLiteBus, AxiLiteMaster
    from tunnelnic.driver import AxiLiteTransport, Nic, UartSimTransport
    from tunnelnic.driver.simuart import SimUart
    from tunnelnic.rtlsim.bench import StreamBench
    p = params()
    tb = StreamBench(dut, sources=("s_axis_tx_i", "s_axis_rx_i"),
                     sinks=("m_axis_tx_o", "m_axis_rx_o"), seed=3)
    if p["control"] == "axil":
        transport = AxiLiteTransport(AxiLiteMaster(AxiLiteBus.from_prefix(dut, "bus"),
                                                   dut.clk, dut.rst))
    else:
        dut.uart_rx.value = 1
    await tb.reset()
    if p["control"] == "uart":
        transport = UartSimTransport(SimUart(dut.clk, dut.uart_rx, dut.uart_tx, DIVISOR),
                                     timeout_bytes=8)
    return tb, Nic(transport)


async def exchange(tb, packets, src, dst):
    from tunnelnic.rtlsim.bench import frame_bytes
    for pkt in packets:
        await tb.send(pkt, meta=0 if src == "s_axis_tx_i" else None, name=src)
    for pkt in packets:
        got = frame_bytes(await tb.recv(dst, timeout_cycles=20000))
        assert got == pkt, "parser pass-through changed a packet"


@cocotb.test()
async def control_path_counters_and_settings(dut):
    """Profiles loaded but disabled (see module docstring): tunnels do not match."""
    from tunnelnic.packets import build_packet
    tb, nic = await open_nic(dut)
    ident = await nic.connect()
    assert ident["P"] == PROFILES and ident["W"] == 8 and not ident["has_tso"]
    loaded = await nic.load_profile(0, "vxlan", enable=0)
    assert await nic.read_profile(0) == loaded
    await nic.load_profile(1, "gre-key", enable=0)
    # Over the UART every access takes ~1500 cycles: read the groups the test checks.
    groups = ("core_stats", "rx_parser_stats", "tx_parser_stats")
    if params()["control"] == "uart":
        groups = ("core_stats",)
    await nic.counters(groups)   # start from zero

    vx = [bytes(build_packet("vxlan", payload=bytes(range(40)), flow=5 + i)) for i in range(2)]
    gre = bytes(build_packet("gre-key", payload=b"x" * 100, flow=9))
    plain = bytes(build_packet("plain", payload=b"y" * 30))
    await exchange(tb, vx + [gre, plain], "s_axis_rx_i", "m_axis_rx_o")
    await exchange(tb, [plain], "s_axis_tx_i", "m_axis_tx_o")
    await ClockCycles(dut.clk, 20)
    c = await nic.counters(groups)
    if "rx_parser_stats" in groups:
        rx = c["rx_parser_stats"]
        assert (rx["packets"], rx["tunnel"], rx["plain"], rx["other"]) == (4, 0, 1, 3), rx
        assert rx["reason_not_tcp"] == 3 and rx["profile_hits[0]"] == 0, rx
        assert c["tx_parser_stats"]["plain"] == 1 and c["tx_parser_stats"]["packets"] == 1
    else:
        rx = await nic.read_reg("rx_parser_stats.other")
        assert rx["count"] == 3
    core = c["core_stats"]
    assert core["rx_pkts_in"] == core["rx_pkts_out"] == 4
    assert core["rx_bytes_in"] == core["rx_bytes_out"] == sum(map(len, vx + [gre, plain]))
    assert core["tx_pkts_in"] == 1 and core["tx_bytes_out"] == len(plain)
    assert (await nic.counters(["core_stats"]))["core_stats"]["rx_pkts_in"] == 0  # read clears

    # Settings registers round-trip (the engines that read them are not built in yet).
    await nic.set_tso(enable=True, mss_default=536)
    assert await nic.read_reg("tso.ctrl") == {"enable": 1, "mss_default": 536}
    await nic.set_rsc(enable=True, timeout_us=20, size_cap=30000, seg_cap=10)
    await nic.flush_all()
    assert await nic.read_reg("rsc.caps") == {"size_cap": 30000, "seg_cap": 10}
    assert await nic.flow_table(contexts=1) == [[0] * 8]


@cocotb.test(skip=not params().get("tso"))
async def mss_register_sets_segment_sizes(dut):
    """The driver's default MSS decides how the core's TSO cuts a VXLAN superframe: every
    segment agrees with the reference model, checks out with scapy, and counters follow."""
    from tunnelnic.model.tso import tso
    from tunnelnic.packets import build_packet, check_checksums
    from tunnelnic.presets import preset
    from tunnelnic.rtlsim.bench import frame_bytes
    tb, nic = await open_nic(dut)
    await nic.connect()
    await nic.load_profile(0, "vxlan")
    table = [preset("vxlan")] + [None] * (PROFILES - 1)
    frame = build_packet("vxlan", payload=bytes(i & 0xFF for i in range(3000)), flow=9,
                         flags="PA")
    for mss in (1000, 700):
        await nic.set_tso(enable=True, mss_default=mss)
        await tb.send(frame, meta=1, name="s_axis_tx_i")   # TSO request, MSS 0 = default
        want, _ = tso(frame, table, mss=0, default_mss=mss)
        assert len(want) == -(-3000 // mss)
        for seg in want:
            got = frame_bytes(await tb.recv("m_axis_tx_o", timeout_cycles=50000))
            assert got == seg, f"MSS {mss}: segment differs from the model"
            assert not check_checksums(got, "vxlan")
        await ClockCycles(dut.clk, 20)
        counts = (await nic.counters(["tso_stats"]))["tso_stats"]
        assert (counts["superframes"], counts["segments"]) == (1, len(want)), counts


@cocotb.test(skip=not params().get("rsc"))
async def timeout_register_sets_flush_timing(dut):
    """Two in-order VXLAN segments open a context; it is flushed (one valid aggregate) only
    once the timeout written through the driver has passed, for two timeout values."""
    from tunnelnic.packets import build_packet, check_checksums
    from tunnelnic.rtlsim.bench import frame_bytes
    tb, nic = await open_nic(dut)
    tb.set_stalls(False)
    await nic.connect()
    await nic.load_profile(0, "vxlan")
    sink = tb.sink["m_axis_rx_o"]
    for n, timeout_us in enumerate((4, 12)):
        await nic.set_rsc(enable=True, timeout_us=timeout_us)
        seq = 1000 + n * 100000
        segs = [build_packet("vxlan", payload=bytes([i]) * 500, seq=seq + 500 * i, flow=3 + n)
                for i in range(2)]
        for seg in segs:
            await tb.send(seg, name="s_axis_rx_i")
        quiet = timeout_us * 125 * 6 // 10          # well before the timeout: nothing yet
        await ClockCycles(dut.clk, quiet)
        assert sink.empty(), f"timeout {timeout_us} us: flushed before it expired"
        agg = frame_bytes(await tb.recv("m_axis_rx_o", timeout_cycles=timeout_us * 125 * 2))
        assert not check_checksums(agg, "vxlan")
        assert bytes(agg).endswith(b"\x00" * 500 + b"\x01" * 500), "aggregate payload"
        counts = (await nic.counters(["rsc_stats"]))["rsc_stats"]
        assert (counts["merged"], counts["flush_timeout"]) == (2, 1), counts


@cocotb.test(skip=not params().get("matching"))
async def enabled_profile_matches_and_disable_stops_it(dut):
    """A preset loaded through the driver makes its packets match; disabling it stops that."""
    from tunnelnic.packets import build_packet
    tb, nic = await open_nic(dut)
    await nic.connect()
    await nic.load_profile(0, "vxlan")
    vx = [bytes(build_packet("vxlan", payload=bytes(range(40)), flow=5 + i)) for i in range(2)]
    await exchange(tb, vx, "s_axis_rx_i", "m_axis_rx_o")
    await ClockCycles(dut.clk, 20)
    rx = (await nic.counters())["rx_parser_stats"]
    assert (rx["tunnel"], rx["profile_hits[0]"]) == (2, 2), rx
    await nic.enable_profile(0, False)
    await exchange(tb, vx, "s_axis_rx_i", "m_axis_rx_o")
    await ClockCycles(dut.clk, 20)
    rx = (await nic.counters())["rx_parser_stats"]
    assert (rx["tunnel"], rx["other"], rx["profile_hits[0]"]) == (0, 2, 0), rx


def test_driver_core_matching():
    run(lambda: make_dut("axil"), {"control": "axil", "profiles": PROFILES, "matching": True},
        "tests.test_driver_core", name="driver-core-axil")


def test_driver_core_rsc():
    run(lambda: make_dut("axil", rsc=True), {"control": "axil", "profiles": PROFILES,
                                              "rsc": True},
        "tests.test_driver_core", name="driver-core-axil-rsc", build_params={"rsc": True},
        testcase="timeout_register_sets_flush_timing")


def test_driver_core_tso():
    run(lambda: make_dut("axil", tso=True), {"control": "axil", "profiles": PROFILES,
                                              "tso": True},
        "tests.test_driver_core", name="driver-core-axil-tso", build_params={"tso": True},
        testcase="mss_register_sets_segment_sizes")


@pytest.mark.parametrize("control", ["axil", "uart"])
def test_driver_core(control):
    run(lambda: make_dut(control), {"control": control, "profiles": PROFILES},
        "tests.test_driver_core", name=f"driver-core-{control}")
