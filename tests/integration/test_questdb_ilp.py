"""QuestDBStore against a recording stand-in for QuestDB's HTTP endpoints.

The real `questdb` client and the real store talk HTTP to a small local server that records every
request, so these tests check the exact bytes we send: SQL over /exec and ILP lines over /write.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pytest

from resources.questdb_store import QuestDBStore, parse_export_csv
from resources.timeseries import TS_TYPE, StoreError, TableSchema
from trading_assets.naming import InvalidNameError

SCHEMA = TableSchema(
    columns=(
        ("sym", "symbol"),
        ("close", "double"),
        ("volume", "long"),
        ("note", "string"),
        ("live", "boolean"),
    ),
    dedup_keys=("sym",),
)
# table_columns() as QuestDB answers it for a table created from SCHEMA: column, type, upsertKey.
SCHEMA_COLUMNS = [
    ["ts", "TIMESTAMP", True],
    ["sym", "SYMBOL", True],
    ["close", "DOUBLE", False],
    ["volume", "LONG", False],
    ["note", "VARCHAR", False],
    ["live", "BOOLEAN", False],
]
T0 = datetime(2024, 1, 1, tzinfo=UTC)
T0_NS = 1_704_067_200_000_000_000
JAN_1 = "2024-01-01T00:00:00.000000Z"
CREATE_BARS = (
    'CREATE TABLE IF NOT EXISTS "bars" ("ts" TIMESTAMP, "sym" SYMBOL, "close" DOUBLE, "volume" LONG, '
    '"note" VARCHAR, "live" BOOLEAN) TIMESTAMP("ts") PARTITION BY MONTH WAL DEDUP UPSERT KEYS("ts", "sym");'
)


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeQuestDB:
    """Stand-in for QuestDB's HTTP API: records each request and answers it.

    /write gets `write_status`; /exec gets `errors` or `answers` (matched by SQL substring) or a DDL OK;
    /exp serves the CSV pages in `exports`, one per request.
    """

    port: int = 0
    requests: list[Request] = field(default_factory=list)
    answers: dict[str, list[list]] = field(
        default_factory=lambda: {"table_columns(": SCHEMA_COLUMNS, "wal_tables()": [[False, 3, 3]]}
    )
    errors: dict[str, str] = field(default_factory=dict)
    write_status: int = 204
    write_body: bytes = b""
    exports: list[bytes] = field(default_factory=list)

    def sql(self) -> list[str]:
        """SQL sent to /exec, in order."""
        return [r.params["query"] for r in self.requests if r.path == "/exec"]

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.path == "/write"]

    def ilp_lines(self) -> list[list[str]]:
        """The ILP lines of each /write request."""
        return [r.body.decode().splitlines() for r in self.writes()]

    def respond(self, request: Request) -> tuple[int, bytes]:
        if request.path == "/write":
            return self.write_status, self.write_body
        if request.path == "/exp":
            return 200, self.exports.pop(0)
        query = request.params["query"]
        for needle, message in self.errors.items():
            if needle in query:
                return 400, json.dumps({"query": query, "error": message, "position": 0}).encode()
        for needle, dataset in self.answers.items():
            if needle in query:
                return 200, json.dumps({"query": query, "dataset": dataset, "count": len(dataset)}).encode()
        return 200, b'{"ddl":"OK"}'


def _handler(fake: FakeQuestDB) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the ILP client expects

        def _serve(self) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            request = Request(
                self.command, url.path, params, {k.lower(): v for k, v in self.headers.items()}, body
            )
            fake.requests.append(request)
            status, answer = fake.respond(request)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeQuestDB]:
    fake = FakeQuestDB()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def store(fake: FakeQuestDB) -> QuestDBStore:
    # No client-side retries: a 500 should fail the test at once, not after ten seconds.
    return QuestDBStore(http_port=fake.port, batch_rows=2, retry_timeout_s=0)


def bars(n: int, **overrides: pa.Array) -> pa.Table:
    """n one-minute bars from T0: BTC, close 100.5, 101.5, ..., volume 10, 11, ..."""
    columns = {
        "ts": pa.array([T0_NS // 1000 + i * 60_000_000 for i in range(n)], TS_TYPE),
        "sym": pa.array(["BTC"] * n),
        "close": pa.array([100.5 + i for i in range(n)]),
        "volume": pa.array([10 + i for i in range(n)], pa.int64()),
        "note": pa.array([f"bar {i}" for i in range(n)]),
        "live": pa.array([i % 2 == 0 for i in range(n)]),
    }
    return pa.table(columns | overrides)


def test_write_sends_exact_ilp_lines_with_symbols_as_tags_and_nanosecond_timestamps(fake, store):
    data = bars(2, close=pa.array([42000.25, None]), note=pa.array(['say "hi"', None]))

    assert store.write("bars", data, SCHEMA) == 2

    assert fake.ilp_lines() == [
        [
            f'bars,sym=BTC close=42000.25,volume=10i,note="say \\"hi\\"",live=t {T0_NS}',
            # Nulls are left out of the line; QuestDB stores them as null.
            f"bars,sym=BTC volume=11i,live=f {T0_NS + 60_000_000_000}",
        ]
    ]
    assert fake.writes()[0].params == {"precision": "n"}


def test_write_creates_the_table_before_the_first_row(fake, store):
    store.write("bars", bars(1), SCHEMA)

    kinds = [r.path if r.path != "/exec" else r.params["query"].split(" (")[0] for r in fake.requests]
    assert kinds == [
        'CREATE TABLE IF NOT EXISTS "bars"',
        'SELECT "column", "type", "upsertKey" FROM table_columns(\'bars\');',
        "/write",
        "SELECT suspended, writerTxn, sequencerTxn FROM wal_tables() WHERE name = 'bars';",
    ]
    assert fake.sql()[0] == CREATE_BARS


def test_write_sends_one_request_per_batch_rows(fake, store):
    store.write("bars", bars(5), SCHEMA)

    assert [len(lines) for lines in fake.ilp_lines()] == [2, 2, 1]
    stamps = [int(line.rsplit(" ", 1)[1]) for lines in fake.ilp_lines() for line in lines]
    assert stamps == [T0_NS + i * 60_000_000_000 for i in range(5)]


def test_write_of_no_rows_creates_the_table_and_sends_none(fake, store):
    assert store.write("bars", bars(0), SCHEMA) == 0
    assert fake.writes() == []
    assert fake.sql()[0] == CREATE_BARS


@pytest.mark.parametrize(
    ("name", "data", "error"),
    [
        ("bars", bars(2, close=pa.array([1.0, float("nan")])), StoreError),
        ("bars", bars(2).append_column("extra", pa.array([1, 2])), StoreError),
        ("bars", bars(2).set_column(0, "ts", pa.array([0, 1], pa.timestamp("us"))), StoreError),
        ("bars", bars(2, live=pa.array([True, None])), StoreError),
        ("x; DROP TABLE y", bars(2), InvalidNameError),
        ('bars" (', bars(2), InvalidNameError),
    ],
    ids=["nan", "unknown-column", "naive-ts", "null-boolean", "sql-in-name", "quote-in-name"],
)
@pytest.mark.parametrize("method", ["write", "replace"])
def test_invalid_input_is_refused_before_any_request(fake, store, method, name, data, error):
    with pytest.raises(error):
        getattr(store, method)(name, data, SCHEMA)
    assert fake.requests == []


def test_write_refuses_an_existing_table_with_other_columns(fake, store):
    fake.answers["table_columns("] = [["ts", "TIMESTAMP", True], ["close", "DOUBLE", False]]

    with pytest.raises(StoreError, match="table exists with columns"):
        store.write("bars", bars(2), SCHEMA)
    assert fake.writes() == []


def test_write_fails_when_questdb_suspended_the_table(fake, store):
    fake.answers["wal_tables()"] = [[True, 2, 3]]

    with pytest.raises(StoreError, match="suspended"):
        store.write("bars", bars(1), SCHEMA)


def test_write_waits_a_bounded_time_for_questdb_to_apply_it(fake):
    fake.answers["wal_tables()"] = [[False, 2, 3]]
    store = QuestDBStore(http_port=fake.port, retry_timeout_s=0, wal_apply_timeout_s=0.05)

    with pytest.raises(StoreError, match="applied transaction 2 of 3"):
        store.write("bars", bars(1), SCHEMA)
    assert len([sql for sql in fake.sql() if "wal_tables()" in sql]) > 1


def test_replace_loads_staging_then_swaps_it_in(fake, store):
    assert store.replace("bars", bars(3), SCHEMA) == 3

    assert fake.sql() == [
        'DROP TABLE IF EXISTS "bars__staging";',
        CREATE_BARS.replace('"bars"', '"bars__staging"'),
        "SELECT suspended, writerTxn, sequencerTxn FROM wal_tables() WHERE name = 'bars__staging';",
        'DROP TABLE IF EXISTS "bars";',
        'RENAME TABLE "bars__staging" TO "bars";',
    ]
    lines = [line for lines in fake.ilp_lines() for line in lines]
    assert len(lines) == 3
    assert all(line.startswith("bars__staging,sym=BTC ") for line in lines)
    # Every row went out before the old table was dropped.
    order = [r.path if r.path != "/exec" else r.params["query"] for r in fake.requests]
    assert order.index('DROP TABLE IF EXISTS "bars";') > max(i for i, p in enumerate(order) if p == "/write")


ILP_ERROR = json.dumps(
    {"code": "invalid", "message": "failed to parse line protocol: cast error", "line": 1, "errorId": "e-1"}
).encode()


@pytest.mark.parametrize("status", [400, 500])
def test_failed_replace_drops_staging_and_keeps_the_old_table(fake, store, status):
    fake.write_status, fake.write_body = status, ILP_ERROR

    with pytest.raises(StoreError, match="cast error"):
        store.replace("bars", bars(3), SCHEMA)

    assert len(fake.writes()) == 1  # the first chunk failed; nothing more was sent
    assert fake.sql()[-1] == 'DROP TABLE IF EXISTS "bars__staging";'
    assert not any('"bars";' in sql or sql.startswith("RENAME") for sql in fake.sql())


def test_failed_wal_apply_in_replace_keeps_the_old_table(fake, store):
    fake.answers["wal_tables()"] = [[True, 0, 1]]

    with pytest.raises(StoreError, match="suspended"):
        store.replace("bars", bars(1), SCHEMA)
    assert fake.sql()[-1] == 'DROP TABLE IF EXISTS "bars__staging";'
    assert not any(sql.startswith("RENAME") for sql in fake.sql())


def test_sql_error_becomes_store_error_with_questdb_message(fake, store):
    fake.errors["table_columns("] = "table does not exist [table=nope]"

    with pytest.raises(StoreError, match=r"table does not exist \[table=nope\]"):
        store.read("nope")


def test_basic_auth_goes_with_sql_and_ilp(fake):
    store = QuestDBStore(http_port=fake.port, username="admin", password="s;cret", retry_timeout_s=0)

    store.write("bars", bars(1), SCHEMA)

    # base64("admin:s;cret"): a ';' in the password survives because it is not in the conf string.
    assert {r.headers["authorization"] for r in fake.requests} == {"Basic YWRtaW46cztjcmV0"}


def test_iter_batches_pages_with_limit_until_a_short_page(fake, store):
    header = '"ts","close"\r\n'
    fake.exports = [
        (header + '"2024-01-01T00:00:00.000000Z",1.5\r\n"2024-01-01T00:01:00.000000Z",2.5\r\n').encode(),
        (header + '"2024-01-01T00:02:00.000000Z",3.5\r\n').encode(),
    ]

    batches = list(store.iter_batches("bars", start=T0, columns=["close"], batch_rows=2))

    assert [b.to_pydict() for b in batches] == [{"close": [1.5, 2.5]}, {"close": [3.5]}]
    exports = [r.params["query"] for r in fake.requests if r.path == "/exp"]
    assert exports == [
        f'SELECT "ts", "close" FROM "bars" WHERE "ts" >= \'{JAN_1}\' ORDER BY "ts" {page};'
        for page in ("LIMIT 0, 2", "LIMIT 2, 4")
    ]


def test_read_concatenates_pages_with_the_table_types(fake, store):
    header = '"ts","sym","close","volume","note","live"\r\n'
    fake.exports = [(header + '"2024-01-01T00:00:00.000000Z","BTC",1.5,7,"a",true\r\n').encode()]

    table = store.read("bars")

    assert table.schema == pa.schema(
        [
            ("ts", TS_TYPE),
            ("sym", pa.string()),
            ("close", pa.float64()),
            ("volume", pa.int64()),
            ("note", pa.string()),
            ("live", pa.bool_()),
        ]
    )
    assert table.to_pylist() == [
        {"ts": T0, "sym": "BTC", "close": 1.5, "volume": 7, "note": "a", "live": True}
    ]


def test_read_of_an_unknown_column_is_refused(fake, store):
    with pytest.raises(StoreError, match=r"no columns \['open'\]"):
        store.read("bars", columns=["open"])
    assert [r.path for r in fake.requests] == ["/exec"]


def test_list_tables_leaves_out_staging_and_system_tables(fake, store):
    fake.answers["FROM tables()"] = [["bars"], ["bars__staging"], ["sys.telemetry"], ["aapl"]]

    assert store.list_tables() == ["aapl", "bars"]


def test_drop_sends_drop_if_exists(fake, store):
    store.drop("bars")
    assert fake.sql() == ['DROP TABLE IF EXISTS "bars";']


def test_parse_export_csv_reads_questdb_export_format():
    # As /exp writes it: quoted header, quoted strings and timestamps, nulls as empty fields.
    body = (
        b'"ts","sym","close","volume","note","live"\r\n'
        b'"2024-01-01T00:00:00.000000Z","BTC",42000.25,7,"a, \xe2\x82\xac ""quoted""",true\r\n'
        b'"2024-01-01T00:01:00.123456Z","ETH",,,"",false\r\n'
        b'"2024-01-01T00:02:00.000001Z","ETH",-0.5,-3,,false\r\n'
    )
    schema = pa.schema(
        [
            ("ts", TS_TYPE),
            ("sym", pa.string()),
            ("close", pa.float64()),
            ("volume", pa.int64()),
            ("note", pa.string()),
            ("live", pa.bool_()),
        ]
    )

    table = parse_export_csv(body, schema)

    assert table.schema == schema
    assert table.to_pydict() == {
        "ts": [
            T0,
            datetime(2024, 1, 1, 0, 1, 0, 123456, tzinfo=UTC),
            datetime(2024, 1, 1, 0, 2, 0, 1, tzinfo=UTC),
        ],
        "sym": ["BTC", "ETH", "ETH"],
        "close": [42000.25, None, -0.5],
        "volume": [7, None, -3],
        "note": ['a, € "quoted"', "", None],
        "live": [True, False, False],
    }


def test_parse_export_csv_of_an_empty_result_has_the_schema():
    schema = pa.schema([("ts", TS_TYPE), ("close", pa.float64())])
    assert parse_export_csv(b'"ts","close"\r\n', schema) == schema.empty_table()


def test_parse_export_csv_refuses_other_columns():
    with pytest.raises(StoreError, match="export has columns"):
        parse_export_csv(b'"ts","open"\r\n', pa.schema([("ts", TS_TYPE), ("close", pa.float64())]))
