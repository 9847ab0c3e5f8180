"""The host driver drives the simulated NIC core (cocotb), and every test runs over both
transports, AXI4-Lite and the UART bridge: identity, presets loaded through the register map,
traffic through both datapaths, and counters and behaviour that follow the configuration (a
profile disabled by the driver stops matching; the default-MSS register decides TSO's segment
sizes; the RSC timeout register decides when an open aggregate leaves, and flush-all through
the register flushes every one; the flow-table dump shows the open contexts). Outputs are
compared with the reference models (bytes and RX metadata) and checked with scapy; random
valid pauses and ready backpressure on both sides. Profile matching is also tested in
amaranth.sim (tests/test_core_pysim.py)."""

import cocotb
import pytest
from cocotb.triggers import ClockCycles

from tunnelnic.rtlsim.runner import params, run

CLK = 125_000_000
DIVISOR = 8
PROFILES = 8
CONTEXTS = 32
TIMEOUTS = (5, 20)      # microseconds: T-1 .. T+2 windows that do not overlap


def make_dut(control, tso=False, rsc=False, width=8):
    from hw.core import NicCore
    from tunnelnic.driver.simtop import FlatPorts
    return FlatPorts(NicCore(width, profiles=PROFILES, contexts=CONTEXTS, control=control,
                             clk_freq=CLK, baud=CLK // DIVISOR, uart_timeout=400, tso=tso,
                             rsc=rsc))


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


async def exchange(tb, packets, src, dst, profiles=()):
    """Packets through a path without engine: unchanged; on RX with the metadata of an
    unverified pass-through (see hw/core.py) for the parse record under ``profiles``."""
    from tunnelnic.model import parse
    from tunnelnic.model.rsc import flow_key
    from tunnelnic.rtlsim.bench import frame_bytes
    for pkt in packets:
        await tb.send(pkt, meta=0 if src == "s_axis_tx_i" else None, name=src)
    for pkt in packets:
        frame = await tb.recv(dst, timeout_cycles=20000)
        assert frame_bytes(frame) == pkt, "parser pass-through changed a packet"
        if dst == "m_axis_rx_o":
            rec = parse(pkt, list(profiles))
            mss = rec["payload_len"] if flow_key(rec) is not None else 0
            want = (False, 1, mss, 0, rec["cls"]["profile"], rec["cls"]["kind"], False)
            assert rx_meta(frame) == want, f"RX meta {rx_meta(frame)}, expected {want}"


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
    await exchange(tb, vx + [gre, plain], "s_axis_rx_i", "m_axis_rx_o", [loaded])
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

    # The bridge counts what it executed, and nothing here was bad input.
    bridge = {n: (await nic.read_reg(f"uart_stats.{n}"))["count"]
              for n in ("requests", "bad_check", "truncated")}
    if params()["control"] == "uart":
        assert bridge["requests"] > 20 and bridge["bad_check"] == bridge["truncated"] == 0
    else:
        assert bridge == dict.fromkeys(bridge, 0), bridge   # no bridge in this core

    # Settings registers round-trip (the engines that read them are not built in yet).
    await nic.set_tso(enable=True, mss_default=536)
    assert await nic.read_reg("tso.ctrl") == {"enable": 1, "mss_default": 536}
    await nic.set_rsc(enable=True, timeout_us=20, size_cap=30000, seg_cap=10)
    await nic.flush_all()
    assert await nic.read_reg("rsc.caps") == {"size_cap": 30000, "seg_cap": 10}
    # Without an RSC engine the flow-table view reads 0.
    (ctx,) = await nic.flow_table(contexts=1)
    assert not ctx["valid"] and ctx["tag"] is None
    assert not any(v for k, v in ctx.items() if k not in ("slot", "valid", "tag")), ctx


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
        counts = await group_counts(nic, "tso_stats", ("superframes", "segments"))
        assert (counts["superframes"], counts["segments"]) == (1, len(want)), counts


def seg_frames(encap, flow, seq, sizes, fill=0, **kw):
    """In-order ACK segments of one flow (payload bytes counting up from ``fill``)."""
    from tunnelnic.packets import build_packet
    frames, pos = [], 0
    for n, size in enumerate(sizes):
        payload = bytes((fill + n + i) & 0xFF for i in range(size))
        frames.append(bytes(build_packet(encap, payload=payload, seq=seq + pos, flow=flow, **kw)))
        pos += size
    return frames


def rsc_model(timeout_us):
    """The reference model configured as the core's RSC (register defaults, N, max frame)."""
    from tunnelnic.model.rsc import RscConfig, RscModel
    return RscModel(RscConfig(contexts=CONTEXTS, timeout_us=timeout_us, max_segs=44,
                              max_bytes=65535, buffer_bytes=2048))


def check_output(got, want, encap):
    """``got`` (an AxiStreamFrame from rx_o) is the model's output ``want``: bytes, RX meta,
    and (aggregates, and pass-throughs the model calls checksum-good) scapy's checks."""
    from tunnelnic.packets import check_checksums
    from tunnelnic.rtlsim.bench import frame_bytes
    frame = frame_bytes(got)
    assert frame == want.frame, (f"frame differs: {len(frame)} bytes, the model's "
                                 f"{len(want.frame)}")
    have = rx_meta(got)
    assert have == (want.agg, want.segs, want.mss, want.ctx, want.profile, want.kind,
                    want.csum_ok), f"RX meta {have} is not the model's {want}"
    if want.agg or want.csum_ok:
        assert check_checksums(frame, encap) == [], check_checksums(frame, encap)


def rx_meta(frame):
    """(agg, segs, mss, ctx, profile, kind, csum_ok) of an rx_o frame's meta (tuser)."""
    from amaranth.lib import data
    from hw.rsc_layouts import RxMeta
    from tunnelnic.rtlsim.bench import frame_meta
    m = data.Layout.cast(RxMeta).from_bits(frame_meta(frame))
    return (bool(m.agg), int(m.segs), int(m.mss), int(m.ctx), int(m.profile), int(m.kind),
            bool(m.csum_ok))


async def group_counts(nic, group, names):
    """The counters of ``group``: every one over AXI4-Lite; over the UART (an access takes
    ~1500 cycles) only ``names``. Reads clear them."""
    if params()["control"] == "axil":
        return (await nic.counters([group]))[group]
    return {n: (await nic.read_reg(f"{group}.{n}"))["count"] for n in names}


async def rsc_counts(nic, names):
    return await group_counts(nic, "rsc_stats", names)


def assert_counts(have, model, before):
    for name, value in have.items():
        want = model.counters[name] - before.get(name, 0)
        assert value == want, f"rsc_stats.{name} = {value}, the model says {want}"


@cocotb.test(skip=not params().get("rsc"))
async def timeout_register_sets_flush_timing(dut):
    """For two timeout values written through the driver, two in-order VXLAN segments open a
    context that leaves as one aggregate between T-1 and T (+ pipeline) microseconds after the
    first segment went in: nothing earlier, and byte-equal (meta too) to the reference model,
    valid per scapy; the counters follow. Random stalls on both sides."""
    from cocotb.utils import get_sim_time, get_time_from_sim_steps
    from tunnelnic.model import parse
    from tunnelnic.presets import preset
    tb, nic = await open_nic(dut)
    await nic.connect()
    await nic.load_profile(0, "vxlan")
    profiles = [preset("vxlan")]
    src = tb.source["s_axis_rx_i"]
    names = ("packets_in", "merged", "aggregates_out", "flush_timeout")
    await rsc_counts(nic, names)                       # start from zero
    for n, timeout_us in enumerate(TIMEOUTS):
        await nic.set_rsc(enable=True, timeout_us=timeout_us)
        model = rsc_model(timeout_us)
        before = dict(model.counters)
        segs = seg_frames("vxlan", 3 + n, 1000 + n * 100000, (500, 500), fill=n)
        expected = []
        for k, seg in enumerate(segs):
            expected += model.push(seg, parse(seg, profiles), 0)
            await tb.send(seg, name="s_axis_rx_i")
            await src.wait()
            if k == 0:
                t0 = get_sim_time("ns")   # the first segment is in
        assert expected == []
        expected = model.advance(timeout_us)
        assert len(expected) == 1 and expected[0].segs == 2
        got = await tb.recv("m_axis_rx_o", timeout_cycles=(timeout_us + 3) * CLK // 10**6)
        waited_us = (get_time_from_sim_steps(got.sim_time_start, "ns") - t0) / 1000
        dut._log.info(f"timeout {timeout_us} us: aggregate after {waited_us:.2f} us")
        assert timeout_us - 1 < waited_us <= timeout_us + 2, (
            f"timeout {timeout_us} us: the aggregate left {waited_us:.2f} us after its first "
            f"segment")
        check_output(got, expected[0], "vxlan")
        await ClockCycles(dut.clk, 50)
        assert tb.sink["m_axis_rx_o"].empty(), "more than one output"
        assert_counts(await rsc_counts(nic, names), model, before)


@cocotb.test(skip=not params().get("rsc"))
async def flush_all_register_and_flow_table(dut):
    """Timeout off: a VXLAN flow (3 segments) and a plain TCP flow (2) stay open, while a SYN
    of a third flow passes through at once; the driver's flow-table dump shows both open
    contexts (key, next seq, count, MSS) as the model holds them; flush-all through the
    register sends both aggregates in slot order, equal to the model and valid per scapy;
    then the table is empty. Random stalls on both sides."""
    from tunnelnic.driver import Nic
    from tunnelnic.model import parse
    from tunnelnic.packets import build_packet
    from tunnelnic.presets import preset
    tb, nic = await open_nic(dut)
    await nic.connect()
    await nic.load_profile(0, "vxlan")
    await nic.set_rsc(enable=True, timeout_us=0)
    profiles = [preset("vxlan")]
    names = ("packets_in", "merged", "aggregates_out", "pass_through", "flush_all")
    await rsc_counts(nic, names)
    model = rsc_model(0)
    vx = seg_frames("vxlan", 77, 5000, (700, 700, 700), fill=1)
    plain = seg_frames("plain", 0, 90000, (300, 300), fill=2, sport=41000)
    syn = bytes(build_packet("plain", seq=1, flags="S", sport=42000))
    encap = {}
    for f in [vx[0], plain[0], vx[1], syn, plain[1], vx[2]]:
        encap[f] = "vxlan" if f in vx else "plain"
        out = model.push(f, parse(f, profiles), 0)
        await tb.send(f, name="s_axis_rx_i")
        for want in out:                   # only the SYN comes out now
            check_output(await tb.recv("m_axis_rx_o", timeout_cycles=20000), want, "plain")
    await tb.source["s_axis_rx_i"].wait()
    await ClockCycles(dut.clk, 2000)
    assert tb.sink["m_axis_rx_o"].empty(), "an aggregate left with the timeout off"

    contexts = 2 if params()["control"] == "uart" else CONTEXTS   # UART: slow, two are enough
    table = await nic.flow_table(contexts=contexts)
    open_slots = [s for s, c in enumerate(model.slots) if c is not None]
    assert open_slots == [0, 1]
    for slot, ctx in enumerate(model.slots[:contexts]):
        got = table[slot]
        if ctx is None:
            assert not got["valid"] and got["count"] == got["next_seq"] == 0, got
            continue
        assert got["valid"] and Nic.flow_key(got) == ctx.key, (got, ctx.key)
        assert (got["next_seq"], got["count"], got["mss"], got["tag"]) == (
            ctx.next_seq, ctx.count, ctx.mss, ctx.tag), got

    # An index past N reads 0 (not the slot its low bits name: slot 1 is open).
    await nic.write_reg("flow.select", index=CONTEXTS + 1)
    assert (await nic.read_reg("flow.state"))["valid"] == 0
    assert (await nic.read_reg("flow.next_seq"))["seq"] == 0

    await nic.flush_all()
    for want in model.flush_all():
        got = await tb.recv("m_axis_rx_o", timeout_cycles=20000)
        check_output(got, want, "vxlan" if want.key[0] else "plain")
    await ClockCycles(dut.clk, 50)
    assert tb.sink["m_axis_rx_o"].empty()
    assert_counts(await rsc_counts(nic, names), model, {})
    assert not any(c["valid"] for c in await nic.flow_table(contexts=2))


@cocotb.test(skip=not params().get("matching"))
async def enabled_profile_matches_and_disable_stops_it(dut):
    """A preset loaded through the driver makes its packets match; disabling it stops that."""
    from tunnelnic.packets import build_packet
    tb, nic = await open_nic(dut)
    await nic.connect()
    loaded = await nic.load_profile(0, "vxlan")
    vx = [bytes(build_packet("vxlan", payload=bytes(range(40)), flow=5 + i)) for i in range(2)]
    await exchange(tb, vx, "s_axis_rx_i", "m_axis_rx_o", [loaded])
    await ClockCycles(dut.clk, 20)
    names = ("tunnel", "other", "profile_hits[0]")
    rx = await group_counts(nic, "rx_parser_stats", names)
    assert (rx["tunnel"], rx["other"], rx["profile_hits[0]"]) == (2, 0, 2), rx
    await nic.enable_profile(0, False)
    await exchange(tb, vx, "s_axis_rx_i", "m_axis_rx_o", [dict(loaded, enable=0)])
    await ClockCycles(dut.clk, 20)
    rx = await group_counts(nic, "rx_parser_stats", names)
    assert (rx["tunnel"], rx["other"], rx["profile_hits[0]"]) == (0, 2, 0), rx


@pytest.mark.parametrize("control", ["axil", "uart"])
def test_driver_core_matching(control):
    run(lambda: make_dut(control), {"control": control, "profiles": PROFILES, "matching": True},
        "tests.test_driver_core", name=f"driver-core-{control}",
        build_params={"control": control, "profiles": PROFILES},    # test_driver_core's build
        testcase="enabled_profile_matches_and_disable_stops_it")


@pytest.mark.parametrize("control", ["axil", "uart"])
def test_driver_core_rsc(control):
    run(lambda: make_dut(control, rsc=True), {"control": control, "profiles": PROFILES,
                                               "rsc": True},
        "tests.test_driver_core", name=f"driver-core-{control}-rsc",
        build_params={"rsc": True, "control": control},
        testcase=["timeout_register_sets_flush_timing", "flush_all_register_and_flow_table"])


def test_driver_core_rsc_w4():
    """The other width (W=4): the same RSC tests over AXI4-Lite."""
    run(lambda: make_dut("axil", rsc=True, width=4), {"control": "axil", "profiles": PROFILES,
                                                       "rsc": True, "width": 4},
        "tests.test_driver_core", name="driver-core-axil-rsc-w4",
        testcase=["timeout_register_sets_flush_timing", "flush_all_register_and_flow_table"])


@pytest.mark.parametrize("control", ["axil", "uart"])
def test_driver_core_tso(control):
    run(lambda: make_dut(control, tso=True), {"control": control, "profiles": PROFILES,
                                               "tso": True},
        "tests.test_driver_core", name=f"driver-core-{control}-tso",
        build_params={"tso": True, "control": control},
        testcase="mss_register_sets_segment_sizes")


@pytest.mark.parametrize("control", ["axil", "uart"])
def test_driver_core(control):
    run(lambda: make_dut(control), {"control": control, "profiles": PROFILES},
        "tests.test_driver_core", name=f"driver-core-{control}")
