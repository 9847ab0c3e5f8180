"""Register transports: one small interface, three implementations.

A transport moves 32-bit words to and from byte addresses of the CSR bus::

    await t.read(addr) -> int        await t.write(addr, value)

and raises :class:`BusError` when the device answers with an error (SLVERR: unmapped address,
read-only register) or :class:`LinkError` when it cannot get an answer at all. Everything is
``async`` so that the same high-level driver runs inside a cocotb simulation (where waiting
means letting simulated time pass) and against a real board (:class:`SerialTransport`, whose
``async`` methods simply block).
"""

__all__ = ["BusError", "LinkError", "Transport", "AxiLiteTransport", "UartSimTransport",
           "SerialTransport"]


class BusError(Exception):
    """The device answered the access with an error response; nothing was changed."""


class LinkError(Exception):
    """No valid answer from the device (timeout, corrupted or missing response)."""


class Transport:
    async def read(self, addr):
        raise NotImplementedError

    async def write(self, addr, value):
        raise NotImplementedError

    def close(self):
        pass


class AxiLiteTransport(Transport):
    """cocotb: a cocotbext-axi ``AxiLiteMaster`` on the design's CSR bus."""

    def __init__(self, master):
        self.master = master

    async def read(self, addr):
        from cocotbext.axi.constants import AxiResp
        r = await self.master.read(addr, 4)
        if r.resp != AxiResp.OKAY:
            raise BusError(f"read of 0x{addr:04x} answered {r.resp.name}")
        return int.from_bytes(r.data, "little")

    async def write(self, addr, value):
        from cocotbext.axi.constants import AxiResp
        r = await self.master.write(addr, int(value).to_bytes(4, "little"))
        if r.resp != AxiResp.OKAY:
            raise BusError(f"write of 0x{addr:04x} answered {r.resp.name}")


class _FramedTransport(Transport):
    """Shared request/response logic of the UART bridge protocol (see docs/uart-protocol.md)."""

    retries = 2

    async def _exchange(self, frame):
        raise NotImplementedError

    async def _request(self, cmd, addr, value=0):
        from .uart_protocol import Status, decode_response, encode_request
        last = None
        for _ in range(self.retries + 1):
            raw = await self._exchange(encode_request(cmd, addr, value))
            try:
                status, data = decode_response(raw)
            except ValueError as e:
                last = LinkError(f"bad response to 0x{addr:04x}: {e}")
                continue
            if status == Status.BAD_CHECK:
                last = LinkError(f"bridge saw a corrupted request to 0x{addr:04x}")
                continue  # the request was not executed: safe to repeat
            if status != Status.OK:
                raise BusError(f"access to 0x{addr:04x} answered {status.name}")
            return data
        raise last

    async def read(self, addr):
        from .uart_protocol import Cmd
        return await self._request(Cmd.READ, addr)

    async def write(self, addr, value):
        from .uart_protocol import Cmd
        await self._request(Cmd.WRITE, addr, value)


class UartSimTransport(_FramedTransport):
    """cocotb: the UART bridge protocol over simulated pins (:class:`~.simuart.SimUart`)."""

    def __init__(self, uart, timeout_bytes=64):
        self.uart = uart
        self.timeout_bytes = timeout_bytes

    async def _exchange(self, frame):
        from .uart_protocol import RESPONSE_LEN
        await self.uart.drain()
        await self.uart.send(frame)
        return await self.uart.recv(RESPONSE_LEN, timeout_bytes=self.timeout_bytes)


class SerialTransport(_FramedTransport):
    """A real board: the UART bridge protocol over a pyserial port."""

    def __init__(self, port, baud=115200, timeout=0.5):
        import serial
        self.port = serial.Serial(port, baud, timeout=timeout)

    async def _exchange(self, frame):
        from .uart_protocol import RESPONSE_LEN
        self.port.reset_input_buffer()
        self.port.write(frame)
        self.port.flush()
        return self.port.read(RESPONSE_LEN)

    def close(self):
        self.port.close()
