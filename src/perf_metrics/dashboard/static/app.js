// The dashboard (SPEC §12): one customer key, the Metrics API of this origin, nothing else.
// Every name from the data is set with textContent; the key lives in memory, or in this
// tab's sessionStorage when the user asks, never in the URL (the hash holds the window only).

const STORAGE = "perf-metrics-key";
const DAYS = [7, 30, 90];
const money = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD" });
const smallMoney = new Intl.NumberFormat(undefined, {
  style: "currency", currency: "USD", maximumFractionDigits: 5,
});
const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
const count = new Intl.NumberFormat();
const STATUS_ICON = { operational: "✓", degraded: "⚠", outage: "✕", unknown: "?" };

const state = { key: null, account: null, days: 30, dimension: "model", retry: null };

const $ = (id) => document.getElementById(id);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

const fmt = {
  money: (v) => (v === null || v === undefined ? "–" : money.format(v)),
  small: (v) => (v === null || v === undefined ? "–" : smallMoney.format(v)),
  rate: (v) => (v === null || v === undefined ? "–" : percent.format(v)),
  count: (v) => (v === null || v === undefined ? "–" : count.format(v)),
  ms: (v) => (v === null || v === undefined ? "–" : `${count.format(v)} ms`),
};

class KeyRefused extends Error {}
class RateLimited extends Error {
  constructor(seconds) { super(`rate limited for ${seconds} s`); this.seconds = seconds; }
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.key}` } });
  if (response.status === 401 || response.status === 403) {
    throw new KeyRefused((await response.json()).error.message);
  }
  if (response.status === 429) {
    throw new RateLimited(Number(response.headers.get("Retry-After")) || 60);
  }
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new Error(body?.error?.message || `HTTP ${response.status}`);
  }
  return response.json();
}

// ------------------------------------------------------------------ tables and charts

function table(headers, rows, numeric = []) {
  const wrap = el("div", null, "scroll");
  const t = el("table", null, "data");
  const head = t.createTHead().insertRow();
  headers.forEach((h, i) => {
    const th = el("th", h, numeric.includes(i) ? "num" : "");
    th.scope = "col";
    head.appendChild(th);
  });
  const body = t.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    row.forEach((cell, i) => tr.appendChild(el("td", cell, numeric.includes(i) ? "num" : "")));
  }
  wrap.appendChild(t);
  return wrap;
}

function showData(headers, rows, numeric) {
  const details = el("details");
  details.appendChild(el("summary", "Show data"));
  details.appendChild(table(headers, rows, numeric));
  return details;
}

const charts = [];

function chart(container, label, dates, series) {
  const box = el("div", null, "chart");
  box.setAttribute("role", "img");
  box.setAttribute("aria-label", label);
  container.appendChild(box);
  if (typeof uPlot === "undefined") return;
  const xs = dates.map((d) => Date.parse(`${d}T12:00:00Z`) / 1000);
  const palette = ["#1f5fbf", "#d17a00", "#2e8b57", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d"];
  const opts = {
    width: Math.max(280, box.clientWidth || container.clientWidth || 500),
    height: 220,
    series: [{}, ...series.map((s, i) => ({
      label: s.label, stroke: palette[i % palette.length],
      fill: s.fill ? `${palette[i % palette.length]}33` : undefined, width: 1.5,
    }))],
    axes: [{}, { size: 60 }],
  };
  charts.push(new uPlot(opts, [xs, ...series.map((s) => s.values)], box));
}

function clearCharts() {
  while (charts.length) charts.pop().destroy();
}

// ------------------------------------------------------------------ panels

function panel(id) {
  const section = $(id);
  const body = section.querySelector(".body");
  return {
    busy() { section.setAttribute("aria-busy", "true"); },
    fill(...nodes) {
      section.setAttribute("aria-busy", "false");
      body.replaceChildren(...nodes);
    },
    empty(text = "No calls in this window.") { this.fill(el("p", text, "state")); },
  };
}

function tile(label, value, sub) {
  const node = el("div", null, "tile");
  node.appendChild(el("div", label, "label"));
  node.appendChild(el("div", value, "value"));
  if (sub) node.appendChild(el("div", sub, "sub"));
  return node;
}

function renderTiles(overview, customer) {
  const s = overview.summary;
  const c = customer.cost_analysis;
  const budget = c.budget;
  const projected = budget
    ? `of ${fmt.money(budget.monthly_budget_usd)} budget: ${budget.status.replace("_", " ")}`
      + (budget.projected_exceed_date ? `, crossed ${budget.projected_exceed_date}` : "")
    : "no budget set";
  $("tiles").replaceChildren(
    tile("Calls", fmt.count(s.total_calls), `${fmt.count(s.total_attempts)} provider attempts`),
    tile("Success rate", fmt.rate(s.success_rate)),
    tile("Routing accuracy", fmt.rate(overview.routing.accuracy)),
    tile("Month to date", fmt.money(c.current_month)),
    tile("Projected month end", fmt.money(c.projected_month_end), projected),
    tile("Savings vs gpt-4o", fmt.money(c.vs_gpt4o_only.savings_usd),
      c.vs_gpt4o_only.savings_percentage === null ? "" : `${c.vs_gpt4o_only.savings_percentage}%`),
  );
}

function renderCost(byModel) {
  const p = panel("p-cost");
  if (!byModel.totals.calls) return p.empty();
  const dates = byModel.groups[0].daily.map((d) => d.date);
  const running = dates.map(() => 0);
  const series = byModel.groups.map((g) => {
    g.daily.forEach((d, i) => { running[i] += d.total_cost_usd; });
    return { label: g.value ?? "(none)", values: running.map((v) => Math.round(v * 100) / 100), fill: true };
  });
  const box = el("div");
  p.fill(box);
  chart(box, "Daily cost, stacked by model", dates, series.reverse());
  const rows = [];
  for (const g of byModel.groups) {
    for (const d of g.daily) rows.push([d.date, g.value ?? "(none)", fmt.money(d.total_cost_usd)]);
  }
  box.appendChild(showData(["Date", "Model", "Cost"], rows, [2]));
}

function renderCalls(daily) {
  const p = panel("p-calls");
  const days = daily.daily_data;
  if (!days.some((d) => d.total_calls)) return p.empty();
  const box = el("div");
  p.fill(box);
  chart(box, "Calls per day", days.map((d) => d.date),
    [{ label: "calls", values: days.map((d) => d.total_calls) }]);
  box.appendChild(showData(
    ["Date", "Calls", "Cost", "Success rate"],
    days.map((d) => [d.date, fmt.count(d.total_calls), fmt.money(d.total_cost_usd), fmt.rate(d.success_rate)]),
    [1, 2, 3],
  ));
}

function renderModels(overview) {
  const p = panel("p-models");
  const models = Object.entries(overview.models);
  if (!models.length) return p.empty();
  const rows = models.map(([name, m]) => [name, fmt.count(m.calls), fmt.rate(m.percentage),
    fmt.small(m.avg_cost), fmt.ms(m.avg_latency_ms)]);
  const list = el("div");
  for (const [name, m] of models) {
    const line = el("div");
    line.appendChild(el("span", `${name} ${fmt.rate(m.percentage)}`));
    const bar = el("div", null, "bar");
    bar.style.width = `${Math.max(1, m.percentage * 100)}%`;
    line.appendChild(bar);
    list.appendChild(line);
  }
  p.fill(list, showData(["Model", "Calls", "Share", "Avg cost", "Avg latency"], rows, [1, 2, 3, 4]));
}

function renderFailures(failures) {
  const p = panel("p-failures");
  const modes = Object.entries(failures.by_failure_mode);
  if (!failures.summary.total_failures) return p.empty("No failures in this window.");
  const byMode = table(["Failure mode", "Count", "Share"],
    modes.map(([mode, f]) => [mode, fmt.count(f.count), fmt.rate(f.percentage)]), [1, 2]);
  const byModel = table(["First-choice model", "Calls", "Failures", "Failure rate"],
    Object.entries(failures.by_model).map(([m, f]) => [m, fmt.count(f.total_calls),
      fmt.count(f.failures), fmt.rate(f.failure_rate)]), [1, 2, 3]);
  p.fill(el("p", `${fmt.count(failures.summary.total_failures)} failures, rate ${fmt.rate(failures.summary.failure_rate)}`),
    el("h3", "By mode"), byMode, el("h3", "By model"), byModel);
}

function renderProviders(providers) {
  const p = panel("p-providers");
  const entries = Object.entries(providers.providers);
  if (!entries.length) return p.empty("No provider traffic in this window.");
  const rows = entries.map(([name, v]) => [
    name, `${STATUS_ICON[v.status] ?? "?"} ${v.status}`, fmt.rate(v.uptime),
    fmt.ms(v.p95_latency_ms), fmt.ms(v.p99_latency_ms), fmt.count(v.incidents.length),
  ]);
  const t = table(["Provider", "Status", "Uptime", "p95", "p99", "Incidents"], rows, [2, 3, 4, 5]);
  t.querySelectorAll("tbody tr").forEach((tr, i) => {
    tr.children[1].className = `status-${entries[i][1].status}`;
  });
  p.fill(t);
}

function renderRecommendations(performance, failures, providers) {
  const p = panel("p-recommendations");
  const items = [
    ...performance.recommendations.map((r) =>
      `${r.task_type}: route from ${r.current_model} to ${r.recommended_model} (cost change ${fmt.money(r.cost_change_usd)})`),
    ...failures.mitigation_recommendations.map((r) => `${r.issue}. ${r.recommendation}`),
    ...providers.recommendations.map((r) => `${r.provider}: ${r.message}. ${r.action}`),
  ];
  if (!items.length) return p.empty("Nothing to recommend for this window.");
  const list = el("ul", null, "recs");
  for (const text of items) list.appendChild(el("li", text));
  p.fill(list);
}

function renderBreakdown(breakdown) {
  const p = panel("p-breakdown");
  if (!breakdown.totals.calls) return p.empty();
  const total = breakdown.totals.total_cost_usd;
  p.fill(table(
    ["Value", "Calls", "Cost", "Share of cost"],
    breakdown.groups.map((g) => [g.value ?? "(none)", fmt.count(g.calls), fmt.money(g.total_cost_usd),
      fmt.rate(total ? g.total_cost_usd / total : null)]),
    [1, 2, 3],
  ));
}

// ------------------------------------------------------------------ loading

function notice(text, error = false) {
  const n = $("notice");
  n.hidden = !text;
  n.textContent = text || "";
  n.className = error ? "error" : "";
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const days = Number(params.get("days"));
  state.days = DAYS.includes(days) ? days : 30;
  state.dimension = params.get("by") || "model";
}

function writeHash() {
  const hash = `#days=${state.days}&by=${encodeURIComponent(state.dimension)}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
  document.querySelectorAll("nav button").forEach((b) => {
    b.setAttribute("aria-pressed", String(Number(b.dataset.days) === state.days));
  });
}

function fillDimensions() {
  const select = $("dimension");
  const keys = state.account.tracked_metadata_keys.map((k) => `metadata.${k}`);
  const options = ["model", "provider", "task_type", "user", ...keys];
  if (!options.includes(state.dimension)) state.dimension = "model";
  select.replaceChildren(...options.map((o) => {
    const option = el("option", o);
    option.value = o;
    option.selected = o === state.dimension;
    return option;
  }));
}

function forgetKey(message) {
  state.key = null;
  state.account = null;
  sessionStorage.removeItem(STORAGE);
  $("key").value = "";
  $("panels").hidden = true;
  $("context").textContent = "Paste a customer key to see its account.";
  if (message) notice(message, true);
}

async function load() {
  if (!state.key) return;
  clearTimeout(state.retry);
  writeHash();
  const days = `days=${state.days}`;
  const hours = Math.min(168, state.days * 24);
  document.querySelectorAll(".panel").forEach((s) => s.setAttribute("aria-busy", "true"));
  notice(`Loading the last ${state.days} days…`);
  try {
    if (!state.account) {
      state.account = await api("/v1/account");
      fillDimensions();
    }
    const byModel = `/v1/metrics/breakdown?group_by=model&series=daily&limit=10&${days}`;
    const chosen = state.dimension === "model"
      ? byModel : `/v1/metrics/breakdown?group_by=${encodeURIComponent(state.dimension)}&limit=20&${days}`;
    const [overview, customer, performance, failures, providers, daily, cost, breakdown] =
      await Promise.all([
        api(`/v1/metrics/overview?${days}`), api(`/v1/metrics/customer?${days}`),
        api(`/v1/metrics/performance?${days}`), api(`/v1/metrics/failures?${days}`),
        api(`/v1/metrics/providers?hours=${hours}`), api(`/v1/metrics/daily?${days}`),
        api(byModel), chosen === byModel ? null : api(chosen),
      ]);
    $("panels").hidden = false;
    const asOf = new Date(overview.data_as_of);
    $("context").textContent = `${state.account.name} (${state.account.account_id}, ${state.account.environment}) · `
      + `days in ${state.account.timezone} · data as of ${asOf.toLocaleTimeString()}`;
    clearCharts();
    renderTiles(overview, customer);
    renderCost(cost);
    renderCalls(daily);
    renderModels(overview);
    renderFailures(failures);
    renderProviders(providers);
    renderRecommendations(performance, failures, providers);
    renderBreakdown(breakdown ?? cost);
    notice("");
  } catch (error) {
    if (error instanceof KeyRefused) {
      forgetKey(`This key was refused: ${error.message} Paste a customer key (pk_live_… or pk_test_…).`);
    } else if (error instanceof RateLimited) {
      // The last good numbers stay on screen.
      notice(`The account's rate limit is spent: retrying in ${error.seconds} s.`, true);
      state.retry = setTimeout(load, error.seconds * 1000);
    } else {
      notice(`Could not load: ${error.message}`, true);
    }
    document.querySelectorAll(".panel").forEach((s) => s.setAttribute("aria-busy", "false"));
  }
}

function start() {
  readHash();
  writeHash();
  const saved = sessionStorage.getItem(STORAGE);
  if (saved) {
    state.key = saved;
    $("remember").checked = true;
  }
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("key").value.trim();
    state.account = null;
    $("key").value = "";
    if ($("remember").checked) sessionStorage.setItem(STORAGE, state.key);
    else sessionStorage.removeItem(STORAGE);
    notice("");
    load();
  });
  $("forget").addEventListener("click", () => forgetKey());
  document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => {
    state.days = Number(b.dataset.days);
    load();
  }));
  $("dimension").addEventListener("change", (event) => {
    state.dimension = event.target.value;
    load();
  });
  window.addEventListener("hashchange", () => { readHash(); load(); });
  load();
}

start();
