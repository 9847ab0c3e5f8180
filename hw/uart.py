"""8N1 UART receiver and transmitter.

``divisor = round(clk_freq / baud)`` clock cycles per bit; the constructors refuse a divisor
below 4 or a baud error above 2 %. At the Versa's 125 MHz: 115200 baud -> 1085, 3 Mbaud -> 42
(0.8 % error).

:class:`UartRx`: ``rx`` (pin, synchronised with two flip-flops) -> ``o`` stream of
``{data, frame_err}``. The start bit is confirmed at its middle (a glitch shorter than half a bit
is ignored); bits are sampled at their middles; a stop bit sampled low gives ``frame_err`` and
the receiver waits for the line to go idle (high) before hunting for the next start bit, so a
break or a wrong baud rate cannot make it spin. Each byte is offered for one byte time; if the
consumer has not taken the previous byte when the next one completes, the new byte is dropped
and ``overrun`` pulses for one cycle. Latency: the byte appears half a bit after the middle of its
stop bit. Reset: idle, nothing pending.

:class:`UartTx`: ``i`` stream of bytes -> ``tx`` pin (idle high). ``i.ready`` is high while idle;
one byte takes ``10 * divisor`` cycles. Reset: line idle high.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["uart_divisor", "UartRx", "UartTx", "RxByte"]


class RxByte(data.Struct):
    data: 8
    frame_err: 1


def uart_divisor(clk_freq, baud):
    """Clock cycles per bit; ValueError when the clock cannot make ``baud`` within 2 %."""
    if clk_freq <= 0 or baud <= 0:
        raise ValueError(f"clock frequency and baud rate must be positive, not {clk_freq}, {baud}")
    divisor = round(clk_freq / baud)
    if divisor < 4:
        raise ValueError(f"baud {baud} is too fast for a {clk_freq} Hz clock "
                         f"(needs at least 4 cycles per bit)")
    error = abs(clk_freq / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"baud {baud} from a {clk_freq} Hz clock is off by {error:.1%} (> 2 %)")
    return divisor


class UartRx(wiring.Component):
    """See module docstring."""

    rx: In(1, init=1)
    o: Out(stream.Signature(RxByte))
    overrun: Out(1)

    def __init__(self, clk_freq, baud=115200):
        self.divisor = uart_divisor(clk_freq, baud)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(self.divisor * 3 // 2 + 1))
        bits = Signal(8)
        count = Signal(range(9))

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        def deliver(frame_err):
            with m.If(self.o.valid & ~self.o.ready):
                m.d.comb += self.overrun.eq(1)
            with m.Else():
                m.d.sync += [self.o.valid.eq(1), self.o.payload.data.eq(bits),
                             self.o.payload.frame_err.eq(frame_err)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    m.next = "IDLE"   # glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), count.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [bits.eq(Cat(bits[1:], rx)), count.eq(count + 1),
                                 timer.eq(self.divisor - 1)]
                    with m.If(count == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    deliver(0)
                    m.next = "IDLE"
                with m.Else():
                    deliver(1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """See module docstring."""

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, clk_freq, baud=115200):
        self.divisor = uart_divisor(clk_freq, baud)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        shreg = Signal(10, init=0x3FF)
        count = Signal(range(11))
        m.d.comb += self.tx.eq(shreg[0])
        with m.If(count == 0):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid):
                m.d.sync += [shreg.eq(Cat(C(0, 1), self.i.payload, C(1, 1))), count.eq(10),
                             timer.eq(self.divisor - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [shreg.eq(Cat(shreg[1:], C(1, 1))), count.eq(count - 1),
                         timer.eq(self.divisor - 1)]
        return m
