"""Benchmarks of the TunnelNIC engines (run as modules: python -m benchmarks.rsc)."""
