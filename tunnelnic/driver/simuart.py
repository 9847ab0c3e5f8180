"""cocotb: a UART on two simulated pins, timed in clock cycles (exactly ``divisor`` per bit).

:class:`SimUart` drives the design's ``rx`` pin and decodes its ``tx`` pin (8N1) into a byte
queue. It is the host's serial port in simulation, used by
:class:`~tunnelnic.driver.transport.UartSimTransport` and by the bridge's bad-input tests (which
send raw bytes, framing errors and truncated frames through :meth:`send` / :meth:`send_bits`).
"""

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, First

__all__ = ["SimUart"]


class SimUart:
    def __init__(self, clk, rx_pin, tx_pin, divisor):
        self.clk, self.rx_pin, self.tx_pin, self.divisor = clk, rx_pin, tx_pin, divisor
        self.rx_pin.value = 1
        self.received = bytearray()
        self.frame_errors = 0
        self._task = cocotb.start_soon(self._receive())

    async def send_bits(self, bits):
        """Drive raw line levels, one per bit time."""
        for b in bits:
            self.rx_pin.value = b
            await ClockCycles(self.clk, self.divisor)
        self.rx_pin.value = 1

    async def send(self, data, stop_bit=1, gap_bits=0):
        for byte in bytes(data):
            await self.send_bits([0] + [(byte >> i) & 1 for i in range(8)] + [stop_bit]
                                 + [1] * gap_bits)

    async def idle(self, bit_times):
        await ClockCycles(self.clk, self.divisor * bit_times)

    async def _receive(self):
        while True:
            await FallingEdge(self.tx_pin)
            await ClockCycles(self.clk, self.divisor // 2)
            if int(self.tx_pin.value):
                continue
            byte = 0
            for i in range(8):
                await ClockCycles(self.clk, self.divisor)
                byte |= int(self.tx_pin.value) << i
            await ClockCycles(self.clk, self.divisor)
            if not int(self.tx_pin.value):
                self.frame_errors += 1
                continue
            self.received.append(byte)

    async def drain(self):
        self.received.clear()

    async def recv(self, n, timeout_bytes=64):
        """Up to ``n`` bytes; returns early (short) when none arrives for ``timeout_bytes``
        byte times."""
        quiet = 0
        while len(self.received) < n and quiet < timeout_bytes * 10:
            before = len(self.received)
            await ClockCycles(self.clk, self.divisor)
            quiet = 0 if len(self.received) != before else quiet + 1
        out = bytes(self.received[:n])
        del self.received[:n]
        return out
