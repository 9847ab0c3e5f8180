"""UART-to-CSR bridge in front of the CSR block, driven through its pins: good frames execute;
garbage, bad CRCs, unknown commands, truncated frames, framing errors and overruns are answered
with an error or ignored, never executed, and never wedge the bridge."""

import random

import cocotb
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from tunnelnic.rtlsim.runner import params, run

CLK = 125_000_000
DIVISOR = 8
TIMEOUT = 400
PARAMS = {"P": 2, "N": 16}


def make_dut():
    from amaranth import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out
    from amaranth import Value
    from hw.csr import CsrBlock, struct_value
    from hw.uart_bridge import BRIDGE_STATS, UartBridge

    class BridgedCsr(wiring.Component):
        rx: In(1, init=1)
        tx: Out(1, init=1)
        stats: Out(len(BRIDGE_STATS.members))   # the bridge's event pulses, for the bench

        def elaborate(self, platform):
            m = Module()
            m.submodules.csr = csr = CsrBlock(PARAMS)
            m.submodules.bridge = br = UartBridge(CLK, CLK // DIVISOR, csr.addr_width,
                                                  timeout=TIMEOUT)
            wiring.connect(m, br.bus, csr.bus)
            events = {("uart_stats", f): Value.cast(br.stats[f]) for f in BRIDGE_STATS.members}
            m.d.comb += [br.rx.eq(self.rx), self.tx.eq(br.tx),
                         self.stats.eq(br.stats.as_value()),
                         csr.events.as_value().eq(struct_value(csr.events.shape(), events))]
            return m

    return BridgedCsr()


class Counts(dict):
    """Pulses of the bridge's ``stats`` port, per event name, counted every cycle."""

    def __init__(self, dut):
        from hw.uart_bridge import BRIDGE_STATS
        super().__init__(dict.fromkeys(BRIDGE_STATS.members, 0))
        self.names = list(BRIDGE_STATS.members)
        cocotb.start_soon(self._watch(dut))

    async def _watch(self, dut):
        while True:
            await RisingEdge(dut.clk)
            v = int(dut.stats.value)
            for i, name in enumerate(self.names):
                self[name] += v >> i & 1

    def take(self):
        """The counts since the previous take (nonzero ones)."""
        out = {k: v for k, v in self.items() if v}
        for k in self:
            self[k] = 0
        return out


async def setup(dut):
    from tunnelnic.driver.simuart import SimUart
    from tunnelnic.driver.transport import UartSimTransport
    dut.rst.value = 1
    dut.rx.value = 1
    cocotb.start_soon(Clock(dut.clk, 8, unit="ns").start())
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    uart = SimUart(dut.clk, dut.rx, dut.tx, DIVISOR)
    return uart, UartSimTransport(uart, timeout_bytes=8), Counts(dut)


async def raw(uart, frame, expect=True):
    from tunnelnic.driver.uart_protocol import RESPONSE_LEN, decode_response
    await uart.drain()
    await uart.send(frame)
    got = await uart.recv(RESPONSE_LEN, timeout_bytes=8)
    if not expect:
        assert got == b"", f"unexpected answer {got.hex()}"
        return None
    return decode_response(got)


@cocotb.test()
async def good_frames_execute(dut):
    from tunnelnic.regmap import compile_map
    uart, t, counts = await setup(dut)
    rm = compile_map(PARAMS)
    assert await t.read(rm["id.magic"].address) == 0x544E4943
    assert await t.read(rm["id.layout"].address) == rm.layout_hash
    reg = rm["profile[1].word3"]
    for value in (0xDEADBEEF, 0x12345678):
        await t.write(reg.address, value)
        assert await t.read(reg.address) == value
    assert counts.take() == {"requests": 6}
    # The same counts reach the CSR block's uart_stats registers (read through the bridge:
    # this read is request 2 of the count it returns).
    await t.read(rm["uart_stats.requests"].address)
    assert await t.read(rm["uart_stats.requests"].address) == 1


@cocotb.test()
async def bad_frames_are_not_executed(dut):
    from tunnelnic.driver.transport import BusError
    from tunnelnic.driver.uart_protocol import Cmd, Status, encode_request
    from tunnelnic.regmap import compile_map
    uart, t, counts = await setup(dut)
    rm = compile_map(PARAMS)
    target = rm["profile[0].word3"].address
    await t.write(target, 0x11111111)
    counts.take()

    # Bad CRC: answered BAD_CHECK, not executed.
    frame = bytearray(encode_request(Cmd.WRITE, target, 0x22222222))
    frame[-1] ^= 0x40
    assert (await raw(uart, frame))[0] == Status.BAD_CHECK
    # Corrupted data byte (CRC still the original): same.
    frame = bytearray(encode_request(Cmd.WRITE, target, 0x22222222))
    frame[5] ^= 0x01
    assert (await raw(uart, frame))[0] == Status.BAD_CHECK
    assert counts.take() == {"requests": 2, "bad_check": 2}
    # Unknown command with a valid CRC.
    assert (await raw(uart, encode_request(0x58, target, 0x22222222)))[0] == Status.BAD_CMD
    assert counts.take() == {"requests": 1, "bad_cmd": 1}
    # Address beyond the bus.
    assert (await raw(uart, encode_request(Cmd.WRITE, 0xF000, 1)))[0] == Status.BUS_ERROR
    assert counts.take() == {"requests": 1, "bad_addr": 1}
    # Unmapped read, write to read-only: the bus answers SLVERR.
    for coro in (t.read(0x0FC), t.write(rm["id.magic"].address, 0)):
        try:
            await coro
            raise AssertionError("no error")
        except BusError:
            pass
    assert counts.take() == {"requests": 2, "bus_error": 2}
    assert await t.read(rm["id.magic"].address) == 0x544E4943
    assert await t.read(target) == 0x11111111
    # Every refusal above is in the uart_stats registers (clear-on-read).
    for name, want in (("bad_check", 2), ("bad_cmd", 1), ("bad_addr", 1), ("bus_error", 2)):
        assert await t.read(rm[f"uart_stats.{name}"].address) == want, name


@cocotb.test()
async def garbage_truncation_framing_and_overrun_never_wedge(dut):
    from tunnelnic.driver.uart_protocol import Cmd, Status, encode_request
    from tunnelnic.regmap import compile_map
    uart, t, counts = await setup(dut)
    rm = compile_map(PARAMS)
    target = rm["profile[1].word4"].address
    await t.write(target, 0x0BADF00D)
    rng = random.Random(7)
    good = encode_request(Cmd.READ, target)

    # Garbage without a sync byte: ignored, no answer.
    counts.take()
    junk = bytes(rng.choice([b for b in range(256) if b != 0xA5]) for _ in range(30))
    await raw(uart, junk, expect=False)
    assert counts.take() == {"ignored": 30}
    assert await raw(uart, good) == (Status.OK, 0x0BADF00D)
    counts.take()

    # Garbage with sync bytes inside: at worst a BAD_CHECK/BAD_CMD answer, never a write.
    for _ in range(5):
        junk = bytes(rng.randrange(256) for _ in range(25)) + b"\xA5"
        await uart.send(junk)
        await uart.idle(TIMEOUT // DIVISOR + 20)
    await uart.drain()
    c = counts.take()
    assert c.get("requests", 0) == c.get("bad_check", 0) + c.get("bad_cmd", 0) + \
        c.get("bad_addr", 0) + c.get("bus_error", 0), c     # nothing executed fine
    assert await raw(uart, good) == (Status.OK, 0x0BADF00D)
    counts.take()

    # Truncated frame: dropped silently after the timeout.
    write = encode_request(Cmd.WRITE, target, 0x5555AAAA)
    await raw(uart, write[:6], expect=False)
    await uart.idle(TIMEOUT // DIVISOR + 20)
    assert counts.take() == {"truncated": 1}
    assert await raw(uart, good) == (Status.OK, 0x0BADF00D)
    counts.take()

    # Framing error (stop bit low) inside a frame: the frame is dropped.
    await uart.send(write[:4])
    await uart.send(write[4:5], stop_bit=0)
    await uart.send(write[5:])
    assert await uart.recv(8, timeout_bytes=4) == b""
    await uart.idle(TIMEOUT // DIVISOR + 20)
    await uart.drain()
    c = counts.take()
    # At least that byte; the bytes after it may be misframed too. Nothing executed.
    assert c.get("framing", 0) >= 1 and "requests" not in c, c
    assert await raw(uart, good) == (Status.OK, 0x0BADF00D)
    counts.take()

    # Overrun: a second request while the first is answered. The first executes; the second
    # is lost (discarded bytes) or answered with an error, never half-executed.
    second = encode_request(Cmd.WRITE, target, 0x77777777)
    await uart.drain()
    await uart.send(encode_request(Cmd.READ, target) + second[:3])
    await uart.send(second[3:])
    await uart.idle(200)
    await uart.drain()
    assert counts.take().get("discarded", 0) > 0
    assert await t.read(target) in (0x0BADF00D, 0x77777777)
    # A line held low (break) and the bridge still answers afterwards.
    counts.take()
    await uart.send_bits([0] * 40)
    await uart.idle(TIMEOUT // DIVISOR + 20)
    await uart.drain()
    assert counts.take().get("framing", 0) >= 1        # a break reads as bytes of zeros
    await t.write(target, 0x600DCAFE)
    assert await t.read(target) == 0x600DCAFE


def test_uart_bridge():
    run(make_dut, {**PARAMS, "divisor": DIVISOR, "timeout": TIMEOUT}, "sim.test_uart_bridge",
        name="uart-bridge")


def test_uart_parameters():
    from hw.uart import uart_divisor
    from hw.uart_bridge import UartBridge
    assert uart_divisor(125_000_000, 115200) == 1085
    assert uart_divisor(125_000_000, 3_000_000) == 42
    with pytest.raises(ValueError, match="too fast"):
        uart_divisor(125_000_000, 50_000_000)
    with pytest.raises(ValueError, match="off by"):
        uart_divisor(10_000_000, 2_000_000 * 1.1)
    with pytest.raises(ValueError, match="timeout"):
        UartBridge(125_000_000, 115200, timeout=100)
    with pytest.raises(ValueError, match="address width"):
        UartBridge(125_000_000, 115200, addr_width=20)
