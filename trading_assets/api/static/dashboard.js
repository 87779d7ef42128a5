// The dashboard's shared helpers: API calls and how numbers are shown (percentages, ratios, durations).
"use strict";

const API = "/api/v1";

function authHeaders(accept) {
  // A server that sets TRADING_API_READ_TOKEN needs a token for reads too: the one given on this tab.
  const token = sessionStorage.getItem("read-token") || sessionStorage.getItem("write-token");
  return { Accept: accept, ...(token ? { Authorization: `Bearer ${token}` } : {}) };
}

async function api(path) {
  const response = await fetch(API + path, { headers: authHeaders("application/json") });
  const body = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) throw new Error(`${response.status}: ${body.detail || response.statusText}`);
  return body;
}

// Server-sent events read with fetch, not EventSource: EventSource cannot send the Authorization header,
// and a token in the URL would land in access logs. `on` maps event names to handlers of the parsed data;
// `status` hears "live" and "reconnecting"; it reconnects after 1, 2, 4, 8, 10, 10 … s until the page goes
// away. A stream silent for longer than SILENT_MS (the server pings every 15 s) counts as cut: a link
// that drops without closing the connection must not leave the page waiting forever.
const SILENT_MS = 35000;
function liveEvents(path, on, status) {
  let wait = 1000;
  const connect = async () => {
    const abort = new AbortController();
    let watchdog = setTimeout(() => abort.abort(), SILENT_MS);
    try {
      const response = await fetch(API + path, { headers: authHeaders("text/event-stream"), cache: "no-store", signal: abort.signal });
      if (!response.ok) throw new Error(`${response.status}`);
      status("live");
      wait = 1000;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => abort.abort(), SILENT_MS);
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message";
          const data = [];
          for (const line of frame.split("\n")) {
            if (line.startsWith(":")) continue; // a comment: the server's keep-alive ping
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") name = text;
            else if (field === "data") data.push(text);
          }
          if (data.length && on[name]) on[name](JSON.parse(data.join("\n")));
        }
      }
    } catch (error) {
      // a refused, broken or silent stream: say so, then try again
    }
    clearTimeout(watchdog);
    status("reconnecting");
    setTimeout(connect, wait);
    wait = Math.min(wait * 2, 10000);
  };
  connect();
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
