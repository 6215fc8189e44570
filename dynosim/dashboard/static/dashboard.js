// dynosim's dashboard: the overview and the Metrics tab from the JSON endpoints, kept live by
// polling (overview, metrics) and Server-Sent Events (logs). Charts are Plotly's.
"use strict";

const OVERVIEW_EVERY = 3000, METRICS_EVERY = 5000, LOG_LINES = 500;
const COLORS = { "2xx": "#43a047", "3xx": "#1e88e5", "4xx": "#fb8c00", "5xx": "#e53935" };
// Events drawn as lines across every chart; the others (H and R errors...) only on the top one.
const MARKED = { deploy: "#5e35b1", rollback: "#5e35b1", "release-failed": "#c62828",
  config: "#00897b", scale: "#1e88e5", restart: "#6d4c41", crash: "#c62828",
  sleep: "#9e9e9e", wake: "#9e9e9e", addon: "#00897b" };
const MAX_MARKS = 120;
let metricsType = null, chartsReady = false;

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  const { dataset, ...rest } = props || {};
  Object.assign(node, rest);
  Object.assign(node.dataset, dataset || {});
  for (const child of children) node.append(child);
  return node;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function ago(iso) {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return `${Math.round(seconds)}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)}h ago`;
  return `${Math.round(seconds / 86400)}d ago`;
}

function say(text, failed) {
  const result = document.getElementById("action-result");
  result.textContent = text;
  result.className = failed ? "error" : "";
}

async function act(what, path, body) {
  say(`${what}...`);
  try {
    await api(path, body);
    say(`${what}... done`);
  } catch (error) {
    say(`${what}: ${error.message}`, true);
  }
  refreshOverview();
}

function dynoRow(dyno) {
  return el("div", { className: "dyno", dataset: { dyno: dyno.name } },
    el("span", { className: "name", textContent: dyno.name }),
    el("span", { className: `state state-${dyno.state}`, textContent: dyno.state }),
    el("span", { textContent: dyno.since ? ago(dyno.since) : "" }),
    el("span", { textContent: dyno.size || "" }),
    el("button", { type: "button", className: "small", textContent: "Restart",
      onclick: () => act(`Restarting ${dyno.name}`, "/api/restart", { target: dyno.name }) }));
}

function typeBlock(entry, sizes) {
  const quantity = el("input", { type: "number", min: 0, value: entry.quantity,
    id: `quantity-${entry.type}`, ariaLabel: `${entry.type} dynos` });
  const size = el("select", { id: `size-${entry.type}`, ariaLabel: `${entry.type} size` },
    ...sizes.map((name) => el("option", { value: name, textContent: name,
      selected: name.toLowerCase() === entry.size.toLowerCase() })));
  const save = el("button", { type: "button", id: `scale-${entry.type}`, textContent: "Save",
    onclick: () => act(`Scaling ${entry.type}`, "/api/scale",
      { type: entry.type, quantity: Number(quantity.value), size: size.value }) });
  const restart = el("button", { type: "button", textContent: "Restart",
    onclick: () => act(`Restarting ${entry.type}`, "/api/restart", { target: entry.type }) });
  return el("div", { className: "type", id: `formation-${entry.type}` },
    el("h3", { textContent: `${entry.type} (${entry.quantity} × ${entry.size})` }),
    el("div", { className: "command", textContent: entry.command }),
    el("div", { className: "controls" }, quantity, size, save, restart),
    ...entry.dynos.map(dynoRow));
}

function keepEditing(render) {
  // a poll must not overwrite a quantity or size being edited
  const active = document.activeElement;
  if (active && active.closest && active.closest("#formation") && active.tagName !== "BUTTON") return;
  render();
}

function renderOverview(data) {
  document.title = `${data.app} · dynosim`;
  document.getElementById("app-name").textContent = data.app;
  document.getElementById("release").textContent = data.release || "no release";
  const status = document.getElementById("status");
  status.textContent = data.running ? "running" : "not running";
  status.className = data.running ? "badge" : "badge down";
  keepEditing(() => document.getElementById("formation")
    .replaceChildren(...data.formation.map((entry) => typeBlock(entry, data.sizes))));
  document.getElementById("one-offs").replaceChildren(...(data.one_offs.length
    ? [el("h3", { textContent: "One-off dynos" }), ...data.one_offs.map(dynoRow)] : []));
  document.getElementById("addons").replaceChildren(...(data.addons.length
    ? data.addons.map((a) => el("li", { textContent: `${a.name} (${a.service}:${a.plan}) as ${a.config_var}` }))
    : [el("li", { textContent: "No add-ons" })]));
  renderConfig(data.config_vars);
  document.querySelector("#releases tbody").replaceChildren(...data.releases.map((r) =>
    el("tr", {}, el("td", { textContent: r.version }),
      el("td", { textContent: r.description + (r.status === "succeeded" ? "" : ` (${r.status})`) }),
      el("td", { textContent: ago(r.created_at), title: r.created_at }))));
  const select = document.getElementById("metrics-type");
  const types = data.formation.map((entry) => entry.type);
  if (select.options.length !== types.length || [...select.options].some((o, i) => o.value !== types[i])) {
    select.replaceChildren(...types.map((t) => el("option", { value: t, textContent: t })));
    if (metricsType && types.includes(metricsType)) select.value = metricsType;
  }
}

function renderConfig(names) {
  const body = document.querySelector("#config tbody");
  const shown = [...body.rows].map((row) => row.dataset.key || "");
  if (body.rows.length && shown.join("\n") === names.join("\n")) return; // keep revealed values
  body.replaceChildren(...names.map((name) => {
    const value = el("td", { className: "value" });
    const reveal = el("button", { type: "button", className: "small", textContent: "Reveal",
      onclick: async () => {
        try {
          value.textContent = (await api(`/api/config?key=${encodeURIComponent(name)}`)).value;
          reveal.remove();
        } catch (error) { value.textContent = error.message; }
      } });
    value.append(reveal);
    return el("tr", { dataset: { key: name } }, el("td", { className: "key", textContent: name }), value);
  }));
  if (!names.length) body.append(el("tr", {}, el("td", { textContent: "No config vars" })));
}

async function refreshOverview() {
  try {
    renderOverview(await api("/api/overview"));
  } catch (error) {
    const status = document.getElementById("status");
    status.textContent = error.message;
    status.className = "badge down";
  }
}

// -- metrics --------------------------------------------------------------------------------

function layout(title, unit, marks, range) {
  return { title: { text: title, font: { size: 13 }, x: 0, xanchor: "left" },
    margin: { l: 48, r: 12, t: 28, b: 28 }, showlegend: true,
    legend: { orientation: "h", x: 1, xanchor: "right", y: 1.18, font: { size: 11 } },
    xaxis: { type: "date", range }, yaxis: { title: { text: unit }, rangemode: "tozero" },
    shapes: marks, uirevision: "keep" };
}

const SPARSE = 180; // fewer points than this get markers too (a lone minute has no line)

function line(name, x, y, extra) {
  const mode = x.length < SPARSE ? "lines+markers" : "lines";
  return { name, x, y, type: "scatter", mode, marker: { size: 4 }, connectgaps: false, ...extra };
}

function charts(series) {
  const x = series.time;
  const marked = series.events.filter((e) => e.kind in MARKED).slice(-MAX_MARKS);
  const marks = marked.map((e) => ({ type: "line", xref: "x", yref: "paper", x0: e.time, x1: e.time,
    y0: 0, y1: 1, line: { color: MARKED[e.kind], width: 1, dash: "dot" } }));
  const kinds = [...new Set(series.events.map((e) => e.kind))].sort();
  const events = kinds.map((kind) => {
    const found = series.events.filter((e) => e.kind === kind);
    return { name: kind, type: "scatter", mode: "markers", x: found.map((e) => e.time),
      y: found.map(() => kind), text: found.map((e) => `${kind} ×${e.count}`), hoverinfo: "x+text",
      marker: { size: 9, color: MARKED[kind] || "#e53935", symbol: kind in MARKED ? "diamond" : "x" } };
  });
  const rt = series.response_ms, mem = series.memory_mb, range = rangeOf(x);
  return {
    "chart-events": [events, { ...layout("Events", "", [], range), showlegend: false,
      yaxis: { type: "category", automargin: true } }],
    "chart-response": [["p50", "p95", "p99", "max"].map((p) => line(p, x, rt[p])),
      layout("Response Time", "ms", marks, range)],
    // stacked areas, not bars: a day is 1440 minutes, one path per class draws fast
    "chart-throughput": [Object.keys(COLORS).map((kind) => ({ name: kind, x,
      y: series.requests[kind].map((n) => n || 0), type: "scatter", mode: "lines",
      stackgroup: "requests", line: { color: COLORS[kind], width: 1, shape: "hv" } })),
      layout("Throughput (requests per minute, by status)", "requests", marks, range)],
    "chart-memory": [[line("RSS (mean)", x, mem.rss), line("RSS (max)", x, mem.rss_max),
      line("Swap (max)", x, mem.swap_max),
      line("Quota", x, mem.quota, { line: { dash: "dash", color: "#c62828" } })],
      layout("Memory Usage", "MB", marks, range)],
    "chart-load": [[line("mean", x, series.load.mean), line("max", x, series.load.max)],
      layout("Dyno Load", "load", marks, range)],
  };
}

function rangeOf(x) {
  // a minute's room on each side, so the first and last events show whole
  const minute = 60000;
  return x.length ? [Date.parse(x[0]) - minute, Date.parse(x[x.length - 1]) + minute] : undefined;
}

async function refreshMetrics() {
  const select = document.getElementById("metrics-type");
  metricsType = select.value || metricsType || "web";
  const since = document.getElementById("metrics-since").value;
  let series;
  try {
    series = await api(`/api/metrics?type=${encodeURIComponent(metricsType)}&since=${since}`);
  } catch (error) {
    return;
  }
  const config = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  const drawn = Object.entries(charts(series)).map(([id, [data, look]]) =>
    (chartsReady ? Plotly.react : Plotly.newPlot)(id, data, look, config));
  await Promise.all(drawn);
  if (!chartsReady) {
    chartsReady = true;
    performance.mark("charts-ready");
    document.documentElement.dataset.chartsReady = "true";
  }
}

// -- logs -----------------------------------------------------------------------------------

function followLogs() {
  const logs = document.getElementById("logs");
  const stream = new EventSource("/api/logs");
  stream.onmessage = (message) => {
    const entry = JSON.parse(message.data);
    const atBottom = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
    logs.append(el("div", { className: entry.source, textContent: entry.line }));
    while (logs.childElementCount > LOG_LINES) logs.firstElementChild.remove();
    if (atBottom) logs.scrollTop = logs.scrollHeight;
  };
}

function every(ms, task) {
  setInterval(() => { if (!document.hidden) task(); }, ms);
}

document.getElementById("restart-all").onclick = () => act("Restarting all dynos", "/api/restart", {});
document.getElementById("metrics-type").onchange = () => { metricsType = null; refreshMetrics(); };
document.getElementById("metrics-since").onchange = refreshMetrics;
refreshOverview();
refreshMetrics();
followLogs();
every(OVERVIEW_EVERY, refreshOverview);
every(METRICS_EVERY, refreshMetrics);
