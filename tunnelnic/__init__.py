"""TunnelNIC host package: reference model, register-map driver, simulation and build tools."""

__version__ = "0.1.0"
