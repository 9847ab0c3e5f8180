"""TunnelNIC gateware (Amaranth 0.5). One concept per module; see docs/architecture.md."""
