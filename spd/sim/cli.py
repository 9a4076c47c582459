"""`spd sim`: run the simulator in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TextIO

from spd.sim.app import SimSettings, Simulator
from spd.sim.config_file import WriteConfigError, write_config
from spd.sim.sandbox import SANDBOX


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise argparse.ArgumentTypeError("must be ISO 8601, e.g. 2025-03-01T00:00:00Z") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("needs a time zone (Z or an offset)")
    return value


def build_parser(prog: str = "spd sim") -> argparse.ArgumentParser:
    """The `spd sim` options."""
    p = argparse.ArgumentParser(prog=prog, description="Run the local SP-API simulator.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free)")
    p.add_argument("--orders", type=int, default=2000, help="orders in the seeded period")
    p.add_argument("--purchase-orders", type=int, default=500,
                   help="vendor purchase orders in the seeded period")
    p.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
    p.add_argument("--start", type=_instant, help="start of the seeded period (default now-3d)")
    p.add_argument("--end", type=_instant, help="end of the seeded period (default now)")
    p.add_argument("--marketplace", action="append", dest="marketplaces",
                   help="marketplace id of the data (repeatable; default ATVPDKIKX0DER)")
    p.add_argument("--error-rate", type=_probability, default=0.0, help="share of 500/503s")
    p.add_argument("--latency", type=_non_negative, default=0.0, help="added latency in ms")
    p.add_argument("--drop-rate", type=_probability, default=0.0,
                   help="share of connections closed without an answer")
    p.add_argument("--truncate-rate", type=_probability, default=0.0,
                   help="share of successful answers cut short")
    p.add_argument("--no-rate-limit", action="store_true", help="do not enforce usage plans")
    p.add_argument("--next-token-ttl", type=_non_negative, default=1800.0,
                   help="seconds a next token stays valid (default 1800)")
    p.add_argument("--no-auth", action="store_true", help="accept calls without access tokens")
    p.add_argument("--no-live", action="store_true",
                   help="only the seeded data: no objects created or updated after --end")
    p.add_argument("--pager", action="store_true",
                   help="every paged operation answers two pages; the second must follow Amazon's rules")
    p.add_argument("--sandbox", action="store_true",
                   help="answer like Amazon's static sandbox, from the models' x-amzn-api-sandbox examples")
    p.add_argument("--models", metavar="DIR", type=Path,
                   help="Amazon's model files for --sandbox (a checkout of selling-partner-api-models)")
    p.add_argument("--write-config", metavar="PATH", type=Path,
                   help="write a ready config for this simulator to PATH (for `spd run -c PATH` or "
                        "`spd once -c PATH` in another terminal; state beside it)")
    return p


def settings_from_args(args: argparse.Namespace) -> SimSettings:
    """SimSettings from parsed `spd sim` arguments."""
    return SimSettings(
        seed=args.seed, orders=args.orders, purchase_orders=args.purchase_orders,
        start=args.start, end=args.end,
        marketplaces=tuple(args.marketplaces or ("ATVPDKIKX0DER",)),
        host=args.host, port=args.port, error_rate=args.error_rate, latency_ms=args.latency,
        drop_rate=args.drop_rate, truncate_rate=args.truncate_rate,
        rate_limit=not args.no_rate_limit,
        next_token_ttl=timedelta(seconds=args.next_token_ttl), require_auth=not args.no_auth,
        sandbox_models=_sandbox_models(args), pager=args.pager, live=not args.no_live,
    )


def _sandbox_models(args: argparse.Namespace) -> Path | None:
    """The model directory of --sandbox; ValueError when missing or given without --sandbox."""
    if not args.sandbox:
        if args.models is not None:
            raise ValueError("--models is only used with --sandbox")
        return None
    if args.models is None or not args.models.is_dir():
        raise ValueError("--sandbox needs --models DIR, a directory of Amazon's model files")
    return Path(args.models)


async def serve(settings: SimSettings, out: TextIO = sys.stdout, config: Path | None = None) -> None:
    """Run until SIGINT/SIGTERM, printing the URL and how to authenticate (and writing a ready
    config to `config` once the URL is known)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Simulator(settings) as sim:
            if config is not None:
                write_config(config, sim.url, settings.marketplaces, datetime.now(timezone.utc))
            print(f"spd simulator listening on {sim.url}", file=out)
            print(f"  endpoint: {sim.url}   token_url: {sim.token_url}", file=out)
            print("  credentials: any non-empty client_id, client_secret and refresh_token",
                  file=out)
            if config is not None:
                print(f"  config: {config} (spd run -c {config}, or spd once -c {config})", file=out)
            elif settings.sandbox_models is None and not settings.pager:
                print("  a ready config for spd run/once: restart with --write-config PATH", file=out)
            print(f"  ground truth: {sim.url}/_sim/objects?type=ordersV0.getOrders&field=updated"
                  f"   stats: {sim.url}/_sim/stats", file=out)
            if settings.sandbox_models is not None:
                assert sim.app is not None  # started above
                index = sim.app[SANDBOX]
                print(f"  static sandbox: {index.case_count} cases of {index.route_count} "
                      f"operations from {settings.sandbox_models}", file=out)
            out.flush()
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_sim(argv: list[str] | None = None) -> int:
    """Parse `spd sim` arguments and run the simulator; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.write_config is not None and (args.sandbox or args.pager):
        parser.error("--write-config is for the simulated seller; --sandbox and --pager serve no pollers")
    try:
        asyncio.run(serve(settings, config=args.write_config))
    except WriteConfigError as exc:
        print(f"spd sim: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"spd sim: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for `spd sim` (the CLI passes the arguments after `sim`)."""
    return run_sim(argv)


if __name__ == "__main__":
    sys.exit(main())
