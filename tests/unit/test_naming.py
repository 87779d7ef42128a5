import pytest

from trading_assets import naming

HOSTILE = [
    "",
    " ",
    "btc 25",
    "btc25;",
    "btc25; DROP TABLE datasets",
    "btc'25",
    'btc"25',
    "btc`25",
    "btc25--",
    "../btc25",
    "..",
    "btc.25",
    "btc/25",
    "btc\\25",
    "btc\n25",
    "btc\x0025",
    "b\u0442c25",  # Cyrillic te
    "btc\uff12\uff15",  # full-width digits
    "\uff42tc25",  # full-width b
    "btc25\u200b",  # zero-width space
    "BTC25",
    "25btc",
    "_btc",
    "btc_",
    "btc__staging",
    "a" * 500,
    "select",
    "table",
    "drop",
    "datasets",
    "btc_run1",
    "btc_sim12",
    "btc_2",  # would be version 2 of dataset "btc"
    "indicator_sets",
    "walkforward_runs",
    "walkforward_thresholds",
    "btc-25",
    "btc$25",
    "btc*",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_dataset_names_are_refused(name):
    with pytest.raises(naming.InvalidNameError):
        naming.dataset_name(name)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_never_reach_a_table_name(name):
    with pytest.raises(naming.InvalidNameError):
        naming.bars_table(name)


def test_non_strings_are_refused():
    for value in (None, 25, b"btc25", ["btc25"]):
        with pytest.raises(naming.InvalidNameError, match="must be a string"):
            naming.dataset_name(value)


def test_the_error_says_what_is_wrong():
    with pytest.raises(naming.InvalidNameError, match="non-ASCII"):
        naming.dataset_name("b\u0442c25")
    with pytest.raises(naming.InvalidNameError, match="reserved SQL word"):
        naming.dataset_name("select")
    with pytest.raises(naming.InvalidNameError, match="500 characters; the limit is 40"):
        naming.dataset_name("a" * 500)


def test_conventions():
    assert naming.bars_table("btc25") == "btc25"
    assert naming.indicator_table("btc25", "1") == "btc25_1"
    assert naming.indicator_table("btc25", "fast_ma") == "btc25_fast_ma"
    assert naming.run_table("btc25", 3) == "btc25_run3"
    assert naming.sim_table("btc25", 12) == "btc25_sim12"
    assert naming.staging_table("btc25") == "btc25__staging"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1", 1_000_000])
def test_run_and_sim_numbers_are_positive_integers(bad):
    with pytest.raises(naming.InvalidNameError):
        naming.run_table("btc25", bad)
    with pytest.raises(naming.InvalidNameError):
        naming.sim_table("btc25", bad)


@pytest.mark.parametrize("bad", ["", "V1", "1;", "v 1", "v-1", "ver" * 10])
def test_bad_versions_are_refused(bad):
    with pytest.raises(naming.InvalidNameError):
        naming.indicator_table("btc25", bad)


def test_dataset_from_path_lowercases_ascii_only():
    assert naming.dataset_from_path("/landing/BTCUSD_M1.csv") == "btcusd_m1"
    assert naming.dataset_from_path("btc25.txt") == "btc25"
    assert naming.dataset_from_path("btc25.tar.gz") == "btc25"
    with pytest.raises(naming.InvalidNameError, match="rename the file"):
        naming.dataset_from_path("B\u0422C25.txt")  # a Cyrillic capital te stays and is refused


def test_quote_refuses_unvalidated_identifiers():
    assert naming.quote("btc25") == '"btc25"'
    with pytest.raises(naming.InvalidNameError):
        naming.quote('x"; DROP TABLE y; --')


@pytest.mark.parametrize("version", ["run1", "sim12"])
def test_versions_cannot_shadow_run_or_simulation_tables(version):
    with pytest.raises(naming.InvalidNameError, match="run or simulation"):
        naming.indicator_table("btc", version)


def test_live_bars_tables_name_venue_symbol_and_timeframe():
    assert naming.live_bars_table("binance", "BTC/USDT", "1m") == "live_binance_btc_usdt_1m"
    assert naming.live_bars_table("binance", "BTC/USDT:USDT", "4h") == "live_binance_btc_usdt_usdt_4h"
    # A month and a minute stay apart; two symbols that share their letters do too.
    assert naming.live_bars_table("binance", "BTC/USDT", "1M") == "live_binance_btc_usdt_1mo"
    assert naming.live_bars_table("binance", "BTCU/SDT", "1m") != naming.live_bars_table(
        "binance", "BTC/USDT", "1m"
    )
    for venue, symbol, timeframe in [
        ("Binance", "BTC/USDT", "1m"),
        ("binance", "BTC;USDT", "1m"),
        ("binance", "BTC/USDT'--", "1m"),
        ("binance", "BTC", "1m"),
        ("binance", "BTC/USDT", "1x"),
        ("binance", "BTC/USDT", "01m"),
    ]:
        with pytest.raises(naming.InvalidNameError):
            naming.live_bars_table(venue, symbol, timeframe)


def test_datasets_may_not_take_the_live_prefix():
    with pytest.raises(naming.InvalidNameError, match="kept for recorded live bars"):
        naming.dataset_name("live_binance_btc_usdt_1m")
