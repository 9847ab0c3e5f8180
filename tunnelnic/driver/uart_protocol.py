"""Host side of the UART-to-CSR bridge protocol (docs/uart-protocol.md; gateware: hw/uart_bridge.py).

Request, 10 bytes: ``A5 cmd addr[15:8] addr[7:0] d[31:24] d[23:16] d[15:8] d[7:0] crc[15:8] crc[7:0]``
with ``cmd`` ``0x52`` ('R') or ``0x57`` ('W'), data ignored (send 0) for reads.
Response, 8 bytes: ``5A status d[31:24] d[23:16] d[15:8] d[7:0] crc[15:8] crc[7:0]``.
CRC-16/IBM-3740 (poly 0x1021, init 0xFFFF, not reflected, no final xor; the "CCITT-FALSE" CRC)
over every byte between the sync byte and the CRC.
"""

import enum

__all__ = ["SYNC_REQUEST", "SYNC_RESPONSE", "REQUEST_LEN", "RESPONSE_LEN", "Cmd", "Status",
           "crc16", "encode_request", "decode_request", "encode_response", "decode_response"]

SYNC_REQUEST = 0xA5
SYNC_RESPONSE = 0x5A
REQUEST_LEN = 10
RESPONSE_LEN = 8


class Cmd(enum.IntEnum):
    READ = 0x52
    WRITE = 0x57


class Status(enum.IntEnum):
    OK = 0x00          #: executed; data = read value (reads) or 0 (writes)
    BUS_ERROR = 0x01   #: executed on the bus, answered SLVERR (nothing changed), or address too wide
    BAD_CHECK = 0x02   #: CRC mismatch: not executed
    BAD_CMD = 0x03     #: unknown command byte: not executed


def crc16(data):
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def encode_request(cmd, addr, value=0):
    if not 0 <= addr < (1 << 16):
        raise ValueError(f"address 0x{addr:x} does not fit the bridge's 16-bit address")
    if not 0 <= value < (1 << 32):
        raise ValueError(f"value 0x{value:x} is not a 32-bit word")
    body = bytes([int(cmd)]) + addr.to_bytes(2, "big") + value.to_bytes(4, "big")
    return bytes([SYNC_REQUEST]) + body + crc16(body).to_bytes(2, "big")


def decode_request(frame):
    """(cmd byte, addr, value) of a well-formed request; ValueError otherwise."""
    frame = bytes(frame)
    if len(frame) != REQUEST_LEN or frame[0] != SYNC_REQUEST:
        raise ValueError("not a request frame")
    if crc16(frame[1:8]) != int.from_bytes(frame[8:], "big"):
        raise ValueError("bad CRC")
    return frame[1], int.from_bytes(frame[2:4], "big"), int.from_bytes(frame[4:8], "big")


def encode_response(status, value=0):
    body = bytes([int(status)]) + value.to_bytes(4, "big")
    return bytes([SYNC_RESPONSE]) + body + crc16(body).to_bytes(2, "big")


def decode_response(frame):
    """(Status, value) of a response; ValueError when missing, short or corrupted."""
    frame = bytes(frame)
    if len(frame) != RESPONSE_LEN:
        raise ValueError(f"response has {len(frame)} bytes, expected {RESPONSE_LEN}")
    if frame[0] != SYNC_RESPONSE:
        raise ValueError(f"response starts with 0x{frame[0]:02x}, not 0x{SYNC_RESPONSE:02x}")
    if crc16(frame[1:6]) != int.from_bytes(frame[6:], "big"):
        raise ValueError("response CRC mismatch")
    try:
        status = Status(frame[1])
    except ValueError:
        raise ValueError(f"unknown status 0x{frame[1]:02x}") from None
    return status, int.from_bytes(frame[2:6], "big")
