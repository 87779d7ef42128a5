// The dashboard's shared helpers: API calls and how numbers are shown (percentages, ratios, durations).
"use strict";

const API = "/api/v1";

async function api(path) {
  // A server that sets TRADING_API_READ_TOKEN needs a token for reads too: the one given on this tab.
  const token = sessionStorage.getItem("read-token") || sessionStorage.getItem("write-token");
  const headers = { Accept: "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) };
  const response = await fetch(API + path, { headers });
  const body = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) throw new Error(`${response.status}: ${body.detail || response.statusText}`);
  return body;
}

const fmt = {
  pct: (v, digits = 2) => (v == null ? "–" : `${(v * 100).toFixed(digits)}%`),
  num: (v, digits = 2) => (v == null ? "–" : Number(v).toFixed(digits)),
  int: (v) => (v == null ? "–" : Number(v).toLocaleString("en-US")),
  price: (v) => (v == null ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: 6 })),
  // UTC times to the minute, seconds only when there are some; fractions of a second dropped.
  time: (iso) => (iso == null ? "–" : iso.replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, "").replace(/:00$/, "") + " UTC"),
  duration: (seconds) => {
    if (seconds == null) return "–";
    const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600), m = Math.floor((seconds % 3600) / 60);
    return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m`;
  },
};

// The metrics a simulation page shows, in order: [key, label, how].
const SIM_METRICS = [
  ["total_return", "Total return", "pct"], ["cagr", "CAGR", "pct"], ["sharpe", "Sharpe", "num"],
  ["sortino", "Sortino", "num"], ["max_drawdown", "Max drawdown", "pct"], ["max_drawdown_duration", "Longest drawdown", "bars"],
  ["calmar", "Calmar", "num"], ["volatility_ann", "Volatility (ann.)", "pct"], ["n_trades", "Trades", "int"],
  ["win_rate", "Win rate", "pct1"], ["profit_factor", "Profit factor", "num"], ["expectancy", "Expectancy", "pct"],
  ["avg_win", "Avg win", "pct"], ["avg_loss", "Avg loss", "pct"], ["exposure", "Exposure", "pct1"], ["sqn", "SQN", "num"],
];

function show(value, how, barSeconds) {
  if (how === "pct1") return fmt.pct(value, 1);
  if (how === "bars") return value == null ? "–" : fmt.duration(value * barSeconds);
  return fmt[how](value);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

function signed(td, value) {
  if (value != null && value < 0) td.classList.add("neg");
  else if (value != null && value > 0) td.classList.add("pos");
  return td;
}

function fail(where, error) {
  const message = String(error.message || error);
  where.replaceChildren(el("p", { class: "error" }, message));
  if (message.startsWith("401")) {
    // Ask for the read token once, keep it for this tab, and load the page again.
    const input = el("input", { type: "password", id: "read-token", size: 32 });
    const save = el("button", { id: "save-token" }, "Use this token");
    save.onclick = () => { sessionStorage.setItem("read-token", input.value); location.reload(); };
    where.append(el("p", {}, "Read token: ", input, " ", save));
  }
}
