"""The local venue against the real ccxt client (sync ccxt.binance and ccxt.pro.binance), its URLs pointed
at a venue on a free loopback port, the clock stepped by hand: what Binance would answer, the bars as
replayed, orders matched and accounted to the hand-worked cent, and each fault as the ccxt exception a
real Binance answer raises."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import ccxt
import pyarrow.parquet as pq
import pytest
import websockets
from venue_setup import (
    KEY_ENV,
    MINUTE,
    SECRET_ENV,
    T0_MS,
    btc_bars,
    client_config,
    control,
    eth_bars,
    pro_client,
    rest_client,
    running_venue,
    settings,
)

from resources.venues import CcxtVenue, local_venue_urls
from trading_assets.live.venue import LocalVenue, MarketSpec, VenueSettings
from trading_assets.live.venue.clock import VenueClock

BTC = "BTC/USDT"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "test-key")
    monkeypatch.setenv(SECRET_ENV, "test-secret")


def balance(exchange: ccxt.Exchange, asset: str) -> tuple[Decimal, Decimal]:
    """(free, used) as the venue wrote them: ccxt's floats hide trailing digits, the info does not."""
    row = next(b for b in exchange.fetch_balance()["info"]["balances"] if b["asset"] == asset)
    return Decimal(row["free"]), Decimal(row["locked"])


# -- markets and bars ---------------------------------------------------------------------------------------


def test_markets_carry_the_filters_ccxt_reads() -> None:
    spec = MarketSpec(
        BTC, tick_size="0.1", step_size="0.001", min_qty="0.002", max_qty="50", min_notional="10"
    )
    with LocalVenue({BTC: btc_bars()}, settings(), markets=[spec]) as venue, rest_client(venue) as exchange:
        market = exchange.load_markets()[BTC]
    assert (market["id"], market["base"], market["quote"], market["spot"]) == ("BTCUSDT", "BTC", "USDT", True)
    assert market["precision"] == {"amount": 0.001, "price": 0.1, "base": 1e-8, "quote": 1e-8}
    assert market["limits"]["amount"] == {"min": 0.002, "max": 50.0}
    assert market["limits"]["cost"]["min"] == 10.0


def test_fetch_ohlcv_returns_the_replayed_bars_bit_for_bit_and_nothing_from_the_future() -> None:
    eth = eth_bars()
    with running_venue() as venue, rest_client(venue) as exchange:
        venue.advance_to(T0_MS + 20 * MINUTE + 15_000)
        candles = exchange.fetch_ohlcv("ETH/USDT", "1m")
    expected = [
        [T0_MS + i * MINUTE, *(eth.column(c)[i].as_py() for c in ("open", "high", "low", "close", "volume"))]
        for i in range(20)
    ]
    assert candles[:-1] == expected  # == on floats: bit for bit
    live = candles[-1]
    assert live[0] == T0_MS + 20 * MINUTE  # the bar in progress, and nothing after it
    assert all(c[0] <= venue.now_ms() for c in candles)


def test_a_bar_exists_as_closed_from_its_close_time_not_a_millisecond_earlier() -> None:
    with running_venue() as venue, rest_client(venue) as exchange:
        venue.advance_to(T0_MS + 3 * MINUTE - 1)
        before = exchange.fetch_ohlcv(BTC, "1m")
        venue.advance_to(T0_MS + 3 * MINUTE)
        after = exchange.fetch_ohlcv(BTC, "1m")
    full = [T0_MS + 2 * MINUTE, 102.0, 103.5, 101.5, 103.0, 2.0]
    assert before[-1][0] == full[0] and before[-1] != full  # still in progress, partial
    assert after[2] == full and after[3][0] == T0_MS + 3 * MINUTE


def test_the_bar_in_progress_is_a_straight_line_from_its_open_to_its_close() -> None:
    with running_venue() as venue, rest_client(venue) as exchange:
        venue.advance_to(T0_MS + 5 * MINUTE + 20_000)  # a third into bar 5: open 105, close 106, volume 2
        live = exchange.fetch_ohlcv(BTC, "1m")[-1]
        venue.advance_to(T0_MS + 6 * MINUTE)
        closed = exchange.fetch_ohlcv(BTC, "1m", since=T0_MS + 5 * MINUTE, limit=1)
    assert live == [T0_MS + 5 * MINUTE, 105.0, 105 + 1 / 3, 105.0, 105 + 1 / 3, 2 / 3]
    assert closed == [[T0_MS + 5 * MINUTE, 105.0, 106.5, 104.5, 106.0, 2.0]]


def test_klines_select_like_binance_since_and_limit() -> None:
    with running_venue() as venue, rest_client(venue) as exchange:
        venue.advance_to(T0_MS + 8 * MINUTE)
        first_two = exchange.fetch_ohlcv(BTC, "1m", since=T0_MS + 2 * MINUTE, limit=2)
        last_three = exchange.fetch_ohlcv(BTC, "1m", limit=3)
        until = exchange.fetch_ohlcv(BTC, "1m", params={"until": T0_MS + 1 * MINUTE})
        with pytest.raises(ccxt.BadRequest, match="Invalid interval"):
            exchange.fetch_ohlcv(BTC, "5m")
    assert [c[0] for c in first_two] == [T0_MS + 2 * MINUTE, T0_MS + 3 * MINUTE]
    assert [c[0] for c in last_three] == [T0_MS + 6 * MINUTE, T0_MS + 7 * MINUTE, T0_MS + 8 * MINUTE]
    assert [c[0] for c in until] == [T0_MS, T0_MS + MINUTE]


def test_a_running_clock_moves_speed_times_faster_than_the_wall() -> None:
    wall = [100.0]
    clock = VenueClock(T0_MS, speed=60, wall=lambda: wall[0])
    wall[0] += 1.5
    assert clock.now_ms() == T0_MS + 90_000
    clock.advance_to(T0_MS + 10 * MINUTE)
    wall[0] += 0.5
    assert clock.now_ms() == T0_MS + 10 * MINUTE + 30_000
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance_to(T0_MS)


# -- streams ------------------------------------------------------------------------------------------------


async def _candle(exchange, symbol: str, open_ms: int, values: list[float]) -> None:
    """Watch until the cache holds the candle opening at `open_ms` with `values` (its final state)."""
    while True:
        candles = await exchange.watch_ohlcv(symbol, "1m")
        if any(c[0] == open_ms and c[1:] == values for c in candles):
            return


def test_watch_ohlcv_receives_each_closing_bar() -> None:
    async def scenario(venue: LocalVenue) -> None:
        async with pro_client(venue) as exchange:
            await exchange.watch_ohlcv(BTC, "1m")  # subscribed: the bar in progress arrives
            for i in range(1, 4):
                venue.advance_to(T0_MS + (i + 1) * MINUTE)
                await asyncio.wait_for(
                    _candle(
                        exchange, BTC, T0_MS + i * MINUTE, [100.0 + i, 101.5 + i, 99.5 + i, 101.0 + i, 2.0]
                    ),
                    5,
                )

    with running_venue() as venue:
        venue.advance_to(T0_MS + MINUTE + 10_000)
        asyncio.run(scenario(venue))


def test_the_stream_sends_partial_updates_then_the_closed_bar_with_x_true() -> None:
    async def scenario(venue: LocalVenue) -> list[dict]:
        async with websockets.connect(venue.ws_url + "/btcusdt@kline_1m") as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            venue.advance_to(T0_MS + 2 * MINUTE)
            messages = [first]
            while not messages[-1]["k"]["x"]:
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            return messages

    with running_venue() as venue:
        venue.advance_to(T0_MS + MINUTE + 30_000)
        messages = asyncio.run(scenario(venue))
    partial, final = messages[0]["k"], messages[-1]["k"]
    assert (partial["t"], partial["x"], partial["c"], partial["v"]) == (T0_MS + MINUTE, False, "101.5", "1")
    assert final == {
        **final,
        "t": T0_MS + MINUTE,
        "T": T0_MS + 2 * MINUTE - 1,
        "s": "BTCUSDT",
        "i": "1m",
        "o": "101",
        "h": "102.5",
        "l": "100.5",
        "c": "102",
        "v": "2",
        "x": True,
    }


def test_a_dropped_stream_fails_the_pending_watch_and_the_next_watch_reconnects() -> None:
    async def scenario(venue: LocalVenue) -> None:
        async with pro_client(venue) as exchange:
            await exchange.watch_ohlcv(BTC, "1m")
            pending = asyncio.ensure_future(exchange.watch_ohlcv(BTC, "1m"))
            await asyncio.sleep(0.1)
            assert await asyncio.to_thread(venue.drop_streams) == 1
            # ccxt.pro does not reconnect by itself: the waiting call fails with a NetworkError ...
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(pending, 5)
            # ... and the caller's next watch opens a new connection and subscribes again; bars that
            # close while no stream is connected are never sent (the recorder fills that gap over REST).
            await asyncio.wait_for(exchange.watch_ohlcv(BTC, "1m"), 5)
            venue.advance_to(T0_MS + 3 * MINUTE)
            await asyncio.wait_for(
                _candle(exchange, BTC, T0_MS + 2 * MINUTE, [102.0, 103.5, 101.5, 103.0, 2.0]), 5
            )
            assert venue.state()["streams"] == 1

    with running_venue() as venue:
        venue.advance_to(T0_MS + 2 * MINUTE + 1_000)
        asyncio.run(scenario(venue))


# -- orders, fills, balances --------------------------------------------------------------------------------


def test_a_market_buy_fills_at_the_last_close_and_pays_the_fee_in_quote() -> None:
    with running_venue() as venue, rest_client(venue) as exchange:
        venue.advance_to(T0_MS + 2 * MINUTE + 30_000)  # last closed bar: 1, close 102
        order = exchange.create_order(BTC, "market", "buy", 0.5, params={"clientOrderId": "s1-b1-1"})
        assert (order["status"], order["filled"], order["average"]) == ("closed", 0.5, 102.0)
        assert order["fee"] == {"currency": "USDT", "cost": 0.051}
        assert balance(exchange, "USDT") == (Decimal("9948.949"), 0)  # 10000 - 51 - 0.051
        assert balance(exchange, "BTC") == (Decimal("1.5"), 0)
        venue.advance_to(T0_MS + 3 * MINUTE)  # bar 2 closes at 103
        exchange.create_order(BTC, "market", "sell", 0.2)
        assert balance(exchange, "USDT") == (Decimal("9969.5284"), 0)  # + 20.6 - 0.0206
        assert balance(exchange, "BTC") == (Decimal("1.3"), 0)
        trades = exchange.fetch_my_trades(BTC)
    assert [(t["side"], t["price"], t["amount"], t["takerOrMaker"]) for t in trades] == [
        ("buy", 102.0, 0.5, "taker"),
        ("sell", 103.0, 0.2, "taker"),
    ]
    assert len({t["id"] for t in trades}) == 2


def test_slippage_moves_a_market_fill_against_the_taker() -> None:
    with running_venue(slippage_bps="10") as venue, rest_client(venue) as exchange:
        venue.advance_to(T0_MS + 2 * MINUTE)
        buy = exchange.create_order(BTC, "market", "buy", 0.1)
        sell = exchange.create_order(BTC, "market", "sell", 0.1)
    assert (buy["average"], sell["average"]) == (102.102, 101.898)


def test_a_limit_order_fills_on_a_later_bar_that_trades_through_its_price() -> None:
    with running_venue() as venue, rest_client(venue) as exchange:
        venue.advance_to(T0_MS + 2 * MINUTE)
        through = exchange.create_order(BTC, "limit", "buy", 0.1, 102.0, params={"clientOrderId": "thru"})
        exchange.create_order(BTC, "limit", "buy", 0.1, 101.5, params={"clientOrderId": "touch"})
        assert {o["clientOrderId"] for o in exchange.fetch_open_orders(BTC)} == {"thru", "touch"}
        # locked: 0.1 x 102 + fee 0.0102, and 0.1 x 101.5 + fee 0.01015
        assert balance(exchange, "USDT") == (
            Decimal("10000") - Decimal("10.2102") - Decimal("10.16015"),
            Decimal("20.37035"),
        )
        venue.advance_to(T0_MS + 3 * MINUTE)  # bar 2: low 101.5, below 102, only touching 101.5
        filled = exchange.fetch_order(None, BTC, params={"clientOrderId": "thru"})
        resting = exchange.fetch_order(None, BTC, params={"clientOrderId": "touch"})
        assert (filled["status"], filled["average"], filled["lastTradeTimestamp"]) == (
            "closed",
            102.0,
            T0_MS + 3 * MINUTE - 1,
        )
        assert (resting["status"], resting["filled"]) == ("open", 0.0)
        canceled = exchange.cancel_order(None, BTC, params={"clientOrderId": "touch"})
        assert canceled["status"] == "canceled"
        assert exchange.fetch_open_orders(BTC) == []
        assert balance(exchange, "USDT") == (Decimal("9989.7898"), 0)
        assert balance(exchange, "BTC") == (Decimal("1.1"), 0)
        trade = exchange.fetch_my_trades(BTC)[0]
    assert (trade["order"], trade["takerOrMaker"], trade["fee"]["cost"]) == (through["id"], "maker", 0.0102)


def test_a_volume_cap_splits_a_fill_over_bars_with_unique_trade_ids() -> None:
    with running_venue(volume_share="0.25") as venue, rest_client(venue) as exchange:  # 0.5 BTC a bar
        venue.advance_to(T0_MS + 2 * MINUTE)
        exchange.create_order(BTC, "limit", "sell", 1.0, 102.0, params={"clientOrderId": "big"})
        venue.advance_to(T0_MS + 3 * MINUTE)
        half = exchange.fetch_order(None, BTC, params={"clientOrderId": "big"})
        venue.advance_to(T0_MS + 4 * MINUTE)
        done = exchange.fetch_order(None, BTC, params={"clientOrderId": "big"})
        trades = exchange.fetch_my_trades(BTC)
        assert balance(exchange, "USDT") == (Decimal("10101.898"), 0)  # 2 x (51 - 0.051)
        assert balance(exchange, "BTC") == (0, 0)
    assert (half["info"]["status"], half["filled"]) == ("PARTIALLY_FILLED", 0.5)
    assert (done["status"], done["filled"]) == ("closed", 1.0)
    assert [(t["amount"], t["timestamp"]) for t in trades] == [
        (0.5, T0_MS + 3 * MINUTE - 1),
        (0.5, T0_MS + 4 * MINUTE - 1),
    ]
    assert len({t["id"] for t in trades}) == 2


def test_refusals_are_binance_errors_that_ccxt_maps() -> None:
    with running_venue() as venue, rest_client(venue) as exchange:
        with pytest.raises(ccxt.MarketClosed):  # no bar has closed: no price to fill at
            exchange.create_order(BTC, "market", "buy", 0.1)
        venue.advance_to(T0_MS + 2 * MINUTE)
        with pytest.raises(ccxt.InsufficientFunds):
            exchange.create_order(BTC, "market", "buy", 100.0)
        with pytest.raises(ccxt.InsufficientFunds):
            exchange.create_order(BTC, "limit", "sell", 2.0, 110.0)
        with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
            exchange.create_order(BTC, "limit", "buy", 9001.0, 1.0)
        # ccxt maps -1013 by code to BadRequest unless the body names LOT_SIZE or PRICE_FILTER
        with pytest.raises(ccxt.BadRequest, match="MIN_NOTIONAL"):
            exchange.create_order(BTC, "limit", "buy", 0.01, 100.0)
        exchange.create_order(BTC, "limit", "buy", 0.1, 90.0, params={"clientOrderId": "dup"})
        with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
            exchange.create_order(BTC, "limit", "buy", 0.1, 90.0, params={"clientOrderId": "dup"})
        exchange.cancel_order(None, BTC, params={"clientOrderId": "dup"})
        with pytest.raises(ccxt.OrderNotFound):
            exchange.cancel_order(None, BTC, params={"clientOrderId": "dup"})
        with pytest.raises(ccxt.OrderNotFound):
            exchange.fetch_order(None, BTC, params={"clientOrderId": "never-sent"})
        # Binance frees a client order id once its order is done
        assert exchange.create_order(BTC, "limit", "buy", 0.1, 90.0, params={"clientOrderId": "dup"})["id"]


def test_a_bad_signature_or_an_unknown_key_is_an_authentication_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with running_venue() as venue:
        monkeypatch.setenv(SECRET_ENV, "not-the-secret")
        with rest_client(venue) as exchange, pytest.raises(ccxt.AuthenticationError, match="-1022"):
            exchange.fetch_balance()
        monkeypatch.setenv(KEY_ENV, "not-the-key")
        with rest_client(venue) as exchange, pytest.raises(ccxt.AuthenticationError, match="-2015"):
            exchange.fetch_balance()


# -- faults -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "error"),
    [("insufficient_funds", ccxt.InsufficientFunds), ("invalid_quantity", ccxt.InvalidOrder)],
)
def test_reject_next_order_refuses_one_order_only(reason: str, error: type[Exception]) -> None:
    with running_venue() as venue, rest_client(venue) as exchange:
        venue.advance_to(T0_MS + 2 * MINUTE)
        venue.reject_next_order(reason)
        with pytest.raises(error):
            exchange.create_order(BTC, "market", "buy", 0.1)
        assert exchange.create_order(BTC, "market", "buy", 0.1)["status"] == "closed"


def test_partial_fill_now_and_the_rest_at_the_next_bar() -> None:
    with running_venue() as venue, rest_client(venue) as exchange:
        venue.advance_to(T0_MS + 2 * MINUTE)
        venue.partial_fill_next_order(share=0.5, rest="later")
        order = exchange.create_order(BTC, "market", "buy", 0.4, params={"clientOrderId": "half"})
        assert (order["status"], order["filled"], order["remaining"]) == ("open", 0.2, 0.2)
        venue.advance_to(T0_MS + 3 * MINUTE)
        done = exchange.fetch_order(None, BTC, params={"clientOrderId": "half"})
        assert (done["status"], done["filled"]) == ("closed", 0.4)
        assert [t["price"] for t in exchange.fetch_my_trades(BTC)] == [102.0, 103.0]
        assert balance(exchange, "USDT") == (Decimal("9958.959"), 0)  # 10000 - 20.4204 - 20.6206
        assert balance(exchange, "BTC") == (Decimal("1.4"), 0)


def test_partial_fill_never_expires_the_rest() -> None:
    with running_venue() as venue, rest_client(venue) as exchange:
        venue.advance_to(T0_MS + 2 * MINUTE)
        venue.partial_fill_next_order(share=0.25, rest="never")
        order = exchange.create_order(BTC, "market", "sell", 0.4)
        venue.advance_to(T0_MS + 4 * MINUTE)
        later = exchange.fetch_order(order["id"], BTC)
        assert balance(exchange, "BTC") == (Decimal("0.9"), 0)
    assert (order["status"], order["filled"]) == ("expired", 0.1)
    assert (later["status"], later["filled"]) == ("expired", 0.1)


def test_the_ambiguous_order_exists_though_the_client_saw_the_connection_drop() -> None:
    with running_venue() as venue, rest_client(venue) as exchange:
        venue.advance_to(T0_MS + 2 * MINUTE)
        venue.ambiguous_next_order("drop")
        with pytest.raises(ccxt.NetworkError):
            exchange.create_order(BTC, "market", "buy", 0.1, params={"clientOrderId": "s1-b2-1"})
        found = exchange.fetch_order(None, BTC, params={"clientOrderId": "s1-b2-1"})
        assert (found["status"], found["filled"]) == ("closed", 0.1)
        assert balance(exchange, "BTC") == (Decimal("1.1"), 0)


def test_the_asyncio_client_sees_the_cut_as_exchange_not_available() -> None:
    async def scenario(venue: LocalVenue) -> dict:
        async with pro_client(venue) as exchange:
            await exchange.load_markets()
            venue.ambiguous_next_order("drop")
            with pytest.raises(ccxt.ExchangeNotAvailable):
                await exchange.create_order(BTC, "market", "sell", 0.1, params={"clientOrderId": "s1-b2-2"})
            return await exchange.fetch_order(None, BTC, params={"clientOrderId": "s1-b2-2"})

    with running_venue() as venue:
        venue.advance_to(T0_MS + 2 * MINUTE)
        assert asyncio.run(scenario(venue))["status"] == "closed"


def test_the_ambiguous_order_held_past_the_client_timeout_is_a_request_timeout() -> None:
    with running_venue() as venue, rest_client(venue) as exchange:
        exchange.timeout = 300
        venue.advance_to(T0_MS + 2 * MINUTE)
        exchange.load_markets()
        venue.ambiguous_next_order("timeout")
        with pytest.raises(ccxt.RequestTimeout):
            exchange.create_order(BTC, "limit", "buy", 0.1, 95.0, params={"clientOrderId": "slow"})
        assert exchange.fetch_order(None, BTC, params={"clientOrderId": "slow"})["status"] == "open"


def test_a_refused_order_leaves_the_ambiguous_fault_for_the_next_accepted_one() -> None:
    with running_venue() as venue, rest_client(venue) as exchange:
        venue.advance_to(T0_MS + 2 * MINUTE)
        venue.ambiguous_next_order("drop")
        with pytest.raises(ccxt.InsufficientFunds):  # a definitive answer still reaches the client
            exchange.create_order(BTC, "market", "buy", 100.0)
        with pytest.raises(ccxt.NetworkError):
            exchange.create_order(BTC, "market", "buy", 0.1)


@pytest.mark.parametrize(("status", "error"), [(503, ccxt.ExchangeNotAvailable), (504, ccxt.RequestTimeout)])
def test_server_errors_answer_the_next_n_requests(status: int, error: type[Exception]) -> None:
    with running_venue() as venue, rest_client(venue) as exchange:
        venue.advance_to(T0_MS + 2 * MINUTE)
        exchange.load_markets()
        venue.fail_next_requests(2, status)
        for _ in range(2):
            with pytest.raises(error):
                exchange.create_order(BTC, "market", "buy", 0.1)
        assert (
            exchange.fetch_open_orders(BTC) == [] and exchange.fetch_my_trades(BTC) == []
        )  # nothing happened
        assert exchange.create_order(BTC, "market", "buy", 0.1)["status"] == "closed"


def test_latency_delays_every_answer() -> None:
    with running_venue() as venue, rest_client(venue) as exchange:
        exchange.load_markets()
        venue.set_latency(250)
        started = time.perf_counter()
        exchange.fetch_ohlcv(BTC, "1m")
        assert time.perf_counter() - started >= 0.25
        exchange.timeout = 100
        with pytest.raises(ccxt.RequestTimeout):
            exchange.fetch_ohlcv(BTC, "1m")


def test_the_control_endpoint_arms_faults_steps_the_clock_and_shows_the_state() -> None:
    with running_venue() as venue, rest_client(venue) as exchange:
        assert (
            control(venue, "POST", "/_venue/clock", {"to": T0_MS + 2 * MINUTE})["now"] == T0_MS + 2 * MINUTE
        )
        armed = control(
            venue, "POST", "/_venue/faults", {"fault": "reject_next_order", "reason": "insufficient_funds"}
        )
        assert armed["faults"]["reject_next_order"] == "insufficient_funds"
        with pytest.raises(ccxt.InsufficientFunds):
            exchange.create_order(BTC, "market", "buy", 0.1)
        exchange.create_order(BTC, "market", "buy", 0.1, params={"clientOrderId": "c1"})
        state = control(venue, "GET", "/_venue/state")
        assert control(venue, "POST", "/_venue/faults", {"fault": "drop_streams"})["dropped"] == 0
    assert state["now"] == T0_MS + 2 * MINUTE
    assert state["symbols"]["BTCUSDT"] == {"symbol": BTC, "bars": 12, "closed": 2}
    assert state["balances"]["BTC"] == {"free": "1.10000000", "locked": "0.00000000"}
    assert [(o["clientOrderId"], o["status"]) for o in state["orders"]] == [("c1", "FILLED")]
    assert [t["id"] for t in state["trades"]] == [1]


def test_the_control_endpoint_names_a_bad_fault() -> None:
    import urllib.error

    with running_venue() as venue, pytest.raises(urllib.error.HTTPError) as err:
        control(venue, "POST", "/_venue/faults", {"fault": "partial_fill_next_order", "share": 2})
    assert "share must be between 0 and 1" in err.value.read().decode()


# -- the client factory and the command ---------------------------------------------------------------------


def test_the_factory_builds_sandbox_and_local_clients_without_keeping_secrets() -> None:
    sandbox = CcxtVenue(
        venue_id="binance", sandbox=True, api_key_env=KEY_ENV, secret_env=SECRET_ENV
    ).exchange()
    try:
        assert sandbox.urls["api"]["public"] == "https://testnet.binance.vision/api/v3"
        assert (sandbox.apiKey, sandbox.secret) == ("test-key", "test-secret")
    finally:
        sandbox.close()
    public = CcxtVenue(sandbox=True, api_key_env=KEY_ENV, secret_env=SECRET_ENV, public_only=True).exchange()
    try:
        assert not public.apiKey and not public.secret  # market data only: no credentials in the client
    finally:
        public.close()
    assert "test-secret" not in repr(CcxtVenue()) and "test-secret" not in str(CcxtVenue().model_dump())
    assert local_venue_urls("http://127.0.0.1:9/")["ws"]["spot"] == "ws://127.0.0.1:9/stream/ws"
    with pytest.raises(ValueError, match="local_url needs venue_id 'binance'"):
        CcxtVenue(venue_id="kraken", local_url="http://127.0.0.1:9").exchange()
    with pytest.raises(ValueError, match="not a ccxt exchange"):
        CcxtVenue(venue_id="nowhere").exchange()


def test_the_venue_command_serves_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "btc.parquet"
    pq.write_table(btc_bars(), path)
    env = {**os.environ, "TRADING_VENUE_API_KEY": "cli-key", "TRADING_VENUE_SECRET": "cli-secret"}
    command = [
        sys.executable,
        "-m",
        "trading_assets.cli",
        "venue",
        "--bars",
        f"BTC/USDT={path}",
        "--port",
        "0",
    ]
    command += ["--start", "2025-01-01T00:05Z"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("venue on http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[2]
        exchange = CcxtVenue(local_url=url, api_key_env="NONE", secret_env="NONE").exchange()
        try:
            candles = exchange.fetch_ohlcv(BTC, "1m")
        finally:
            exchange.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()
    assert [c[0] for c in candles] == [T0_MS + i * MINUTE for i in range(6)]


def test_client_config_points_rest_and_streams_at_the_venue() -> None:
    with running_venue() as venue:
        config = client_config(venue)
        exchange = config.exchange()
        try:
            assert exchange.urls["api"]["private"] == venue.url + "/api/v3"
            assert exchange.options["fetchMarkets"]["types"] == ["spot"]
        finally:
            exchange.close()


def test_settings_refuse_bad_values_naming_the_field() -> None:
    with pytest.raises(ValueError, match="volume_share"):
        VenueSettings(api_key="k", api_secret="s", volume_share="1.5")
    with pytest.raises(ValueError, match="lack column 'volume'"):
        LocalVenue({BTC: btc_bars().drop_columns(["volume"])}, VenueSettings(api_key="k", api_secret="s"))
