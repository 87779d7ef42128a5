"""`trading-assets venue`: the local venue (Binance spot's REST and kline streams, fault controls under
/_venue) replaying a dataset of the configured store or a Parquet file, on loopback unless told otherwise.
"""

import argparse
import os
import sys
from datetime import UTC, datetime


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    venue = sub.add_parser(
        "venue", help="serve the local venue: Binance spot's API replaying bars, with faults"
    )
    venue.add_argument(
        "--bars",
        action="append",
        required=True,
        metavar="[SYMBOL=]SOURCE",
        help="a dataset of the configured store or a .parquet file (ts + OHLCV) for SYMBOL (BTC/USDT when "
        "omitted, with one --bars); repeat for several symbols",
    )
    venue.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per wall second (0: stopped)"
    )
    venue.add_argument(
        "--start", help="the clock's start, ISO 8601 with zone (default: the first bar's open)"
    )
    venue.add_argument("--interval", help="the bars' Binance interval, e.g. 1m (default: inferred)")
    venue.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    venue.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    venue.add_argument(
        "--balance", action="append", default=[], metavar="ASSET=AMOUNT", help="starting balance (repeatable)"
    )
    venue.add_argument("--fee-rate", default="0.001", help="fee per fill as a share of its quote amount")
    venue.add_argument(
        "--slippage-bps", default="0", help="market orders fill this far beyond the last close"
    )
    venue.add_argument(
        "--volume-share", help="a bar fills at most this share of its volume (default: no cap)"
    )
    venue.add_argument(
        "--seed", type=int, default=0, help="seed of the faults' random draws (latency jitter)"
    )
    venue.add_argument("--api-key-env", default="TRADING_VENUE_API_KEY", help="env var holding the API key")
    venue.add_argument("--secret-env", default="TRADING_VENUE_SECRET", help="env var holding the API secret")
    venue.set_defaults(run=run)


def _start_ms(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--start {text!r} is not an ISO 8601 timestamp") from None
    if value.tzinfo is None:
        raise ValueError(f"--start {text!r} has no time zone; add 'Z' for UTC or an offset like +01:00")
    return int(value.timestamp() * 1000)


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"{flag} {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def _bars(specs: list[str]):  # -> dict[str, pa.Table]
    import pyarrow.parquet as pq

    from resources.timeseries import StoreError
    from trading_assets import naming
    from trading_assets import settings as cfg

    if len(specs) > 1 and any("=" not in s for s in specs):
        raise ValueError("--bars needs SYMBOL=SOURCE when given more than once")
    store, out = None, {}
    for spec in specs:
        symbol, _, source = spec.rpartition("=") if "=" in spec else ("BTC/USDT", "", spec)
        if source.endswith(".parquet") or os.path.isfile(source):
            try:
                out[symbol] = pq.read_table(source)
            except OSError as err:
                raise ValueError(f"--bars {spec}: {err}") from None
            continue
        store = store or cfg.timeseries_store(cfg.Settings.from_env()).process_config_and_initialize()
        try:
            out[symbol] = store.read(naming.table_name(source))
        except StoreError as err:
            raise ValueError(f"--bars {spec}: {err}") from None
    return out


def run(args: argparse.Namespace) -> int:
    from trading_assets.live.venue import LocalVenue, VenueSettings

    try:
        key, secret = os.environ.get(args.api_key_env), os.environ.get(args.secret_env)
        for name, value in ((args.api_key_env, key), (args.secret_env, secret)):
            if not value:
                raise ValueError(f"{name} is not set: the credentials clients of the venue must sign with")
        settings = VenueSettings(
            api_key=key or "",
            api_secret=secret or "",
            speed=args.speed,
            start_ms=_start_ms(args.start),
            interval=args.interval,
            fee_rate=args.fee_rate,
            slippage_bps=args.slippage_bps,
            volume_share=args.volume_share,
            balances=_pairs(args.balance, "--balance") or {"USDT": "10000"},
            seed=args.seed,
        )
        venue = LocalVenue(_bars(args.bars), settings)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: the venue's control endpoint (/_venue) on {args.host} has no authentication",
            file=sys.stderr,
        )

    def announce(v: LocalVenue) -> None:
        start = datetime.fromtimestamp(v.now_ms() / 1000, UTC).isoformat(timespec="seconds")
        symbols = ", ".join(spec.symbol for spec in v.markets.values())
        print(
            f"venue on {v.url} (REST {v.url}/api/v3, streams {v.ws_url}, control {v.url}/_venue/state); "
            f"{symbols} at {v.tape.interval} from {start}, speed {v.clock.speed:g}x",
            flush=True,
        )

    venue.serve(args.host, args.port, on_start=announce)
    return 0
