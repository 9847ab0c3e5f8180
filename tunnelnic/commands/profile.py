"""``tunnelnic profile load vxlan --slot 0 --port ...`` / ``profile show`` / ``profile disable``."""

import asyncio

from .status import add_port_args, open_nic


def _parse_overrides(items):
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"override {item!r} is not FIELD=VALUE")
        out[key] = int(value, 0)
    return out


async def _do(nic, args):
    await nic.connect()
    if args.action == "load":
        profile = await nic.load_profile(args.slot, args.preset, **_parse_overrides(args.set))
        print(f"slot {args.slot}: {args.preset} " + " ".join(f"{k}={v}" for k, v in profile.items()))
    elif args.action == "disable":
        await nic.enable_profile(args.slot, False)
        print(f"slot {args.slot}: disabled")
    else:
        slots = range(nic.map.params["P"]) if args.slot is None else [args.slot]
        for s in slots:
            p = await nic.read_profile(s)
            print(f"slot {s}: " + " ".join(f"{k}={v}" for k, v in p.items()))


def _run(args):
    if args.action == "load" and (args.preset is None or args.slot is None):
        raise SystemExit("profile load needs a preset name and --slot")
    nic = open_nic(args)
    try:
        asyncio.run(_do(nic, args))
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    finally:
        nic.t.close()
    return 0


def register(subparsers):
    p = subparsers.add_parser("profile", help="load, show or disable classifier profiles")
    p.add_argument("action", choices=("load", "show", "disable"))
    p.add_argument("preset", nargs="?", help="preset name (load), see docs/presets.md")
    p.add_argument("--slot", type=int, help="profile slot (0..P-1)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a preset field (repeatable), e.g. --set port=7100")
    add_port_args(p)
    p.set_defaults(func=_run)
