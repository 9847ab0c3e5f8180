"""Host driver for the TunnelNIC register map: :class:`Nic` over a transport."""

from .nic import IdentityError, Nic
from .transport import (AxiLiteTransport, BusError, LinkError, SerialTransport, Transport,
                        UartSimTransport)

__all__ = ["Nic", "IdentityError", "Transport", "AxiLiteTransport", "UartSimTransport",
           "SerialTransport", "BusError", "LinkError"]
