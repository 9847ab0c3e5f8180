"""``tunnelnic status --port /dev/ttyUSB1``: identity, capabilities, board and link status, and
every counter."""

import asyncio


def open_nic(args):
    from ..driver import Nic, SerialTransport
    return Nic(SerialTransport(args.port, args.baud))


def add_port_args(p):
    p.add_argument("--port", required=True, help="serial port of the board's UART bridge")
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")


async def _status(nic, show_zero):
    ident = await nic.connect()
    print("TunnelNIC " + ", ".join(f"{k}={v}" for k, v in ident.items()
                                   if k != "layout") + f", layout=0x{ident['layout']:08x}")
    b = await nic.board()
    if b["ports"]:
        speeds = {0: "10M", 1: "100M", 2: "1G"}
        links = [f"port {n}: " + (f"link up {speeds.get(b[f'speed{n}'], '?')} "
                                  f"{'full' if b[f'duplex{n}'] else 'half'} duplex"
                                  if b[f"link{n}"] else "no link") for n in range(b["ports"])]
        print(f"board: {b['ports']} port(s), core {b['core_mhz']} MHz, host port max frame "
              f"{b['host_max']}; " + "; ".join(links))
    for group, values in (await nic.counters()).items():
        shown = {k: v for k, v in values.items() if v or show_zero}
        if shown:
            print(f"{group}:")
            for k, v in shown.items():
                print(f"  {k:24} {v}{'  (saturated)' if v == 0xFFFFFFFF else ''}")


def _run(args):
    nic = open_nic(args)
    try:
        asyncio.run(_status(nic, args.all))
    finally:
        nic.t.close()
    return 0


def register(subparsers):
    p = subparsers.add_parser("status", help="identity and counters of a board (reads clear "
                                             "the counters: values are since the last read)")
    add_port_args(p)
    p.add_argument("--all", action="store_true", help="also print counters that are zero")
    p.set_defaults(func=_run)
