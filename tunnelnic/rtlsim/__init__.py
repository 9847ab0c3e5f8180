"""Running TunnelNIC gateware in simulation: Verilog generation, cocotb build/run, stream benches."""
