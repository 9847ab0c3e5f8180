"""``tunnelnic status --port /dev/ttyUSB1``: identity, capabilities, board and link status, and
every counter (``--flows``: and the open RSC flow contexts)."""

import asyncio
import ipaddress


def open_nic(args):
    from ..driver import Nic, SerialTransport
    return Nic(SerialTransport(args.port, args.baud))


def add_port_args(p):
    p.add_argument("--port", required=True, help="serial port of the board's UART bridge")
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")


def format_flow(ctx):
    """One line for an open flow context of :meth:`tunnelnic.driver.Nic.flow_table`."""
    ip = ipaddress.IPv4Address
    where = f"{ip(ctx['inner_src'])}:{ctx['sport']} > {ip(ctx['inner_dst'])}:{ctx['dport']}"
    if ctx["tunnel"]:
        where += (f" in profile {ctx['profile']} {ip(ctx['outer_src'])} > "
                  f"{ip(ctx['outer_dst'])} flow {ctx['flow']}")
    return (f"  [{ctx['slot']:3}] {where}  next_seq {ctx['next_seq']}  segments {ctx['count']}"
            f"  mss {ctx['mss']}  tag 0x{ctx['tag']:08x}")


async def _status(nic, show_zero, flows=False):
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
    if flows:
        if not ident["has_rsc"]:
            print("flow table: no RSC engine in this bitstream")
            return
        table = await nic.flow_table(active=True)
        print(f"flow table: {len(table)} of {ident['N']} contexts open")
        for ctx in table:
            print(format_flow(ctx))


def _run(args):
    nic = open_nic(args)
    try:
        asyncio.run(_status(nic, args.all, args.flows))
    finally:
        nic.t.close()
    return 0


def register(subparsers):
    p = subparsers.add_parser("status", help="identity and counters of a board (reads clear "
                                             "the counters: values are since the last read)")
    add_port_args(p)
    p.add_argument("--all", action="store_true", help="also print counters that are zero")
    p.add_argument("--flows", action="store_true",
                   help="also print the open RSC flow contexts (flow key, next seq, segments)")
    p.set_defaults(func=_run)
