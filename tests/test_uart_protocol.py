"""Host side of the UART bridge protocol: CRC, framing, and refusal of bad responses."""

import asyncio

import pytest

from tunnelnic.driver.transport import BusError, LinkError, _FramedTransport
from tunnelnic.driver.uart_protocol import (Cmd, Status, crc16, decode_request, decode_response,
                                            encode_request, encode_response)


def test_crc_check_value():
    assert crc16(b"123456789") == 0x29B1   # CRC-16/IBM-3740 check value


def test_request_roundtrip_and_layout():
    f = encode_request(Cmd.WRITE, 0x0804, 0xDEADBEEF)
    assert f[:8] == bytes.fromhex("a5570804deadbeef") and len(f) == 10
    assert decode_request(f) == (Cmd.WRITE, 0x0804, 0xDEADBEEF)
    bad = bytearray(f)
    bad[3] ^= 1
    with pytest.raises(ValueError, match="CRC"):
        decode_request(bad)
    with pytest.raises(ValueError):
        encode_request(Cmd.READ, 0x10000)


@pytest.mark.parametrize("frame, match", [
    (b"", "0 bytes"),
    (encode_response(Status.OK, 5)[:-1], "7 bytes"),
    (b"\x00" + encode_response(Status.OK, 5)[1:], "starts with"),
    (encode_response(Status.OK, 5)[:-1] + b"\x00", "CRC"),
])
def test_bad_responses(frame, match):
    with pytest.raises(ValueError, match=match):
        decode_response(frame)


class Scripted(_FramedTransport):
    def __init__(self, answers):
        self.answers = list(answers)
        self.sent = []

    async def _exchange(self, frame):
        self.sent.append(frame)
        return self.answers.pop(0)


def test_transport_retries_link_errors_not_bus_errors():
    t = Scripted([b"", encode_response(Status.BAD_CHECK), encode_response(Status.OK, 42)])
    assert asyncio.run(t.read(0x10)) == 42 and len(t.sent) == 3
    t = Scripted([b""] * 3)
    with pytest.raises(LinkError):
        asyncio.run(t.read(0))
    t = Scripted([encode_response(Status.BUS_ERROR)])
    with pytest.raises(BusError, match="BUS_ERROR"):
        asyncio.run(t.write(0, 1))
    assert len(t.sent) == 1   # an executed-and-refused access is not repeated
