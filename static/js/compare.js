/* The comparison dashboard: one chart per metric, every selected run overlaid.
 *
 * Each chart loads its metric for all runs in one request (downsampled on shared step buckets, with each
 * bucket's mean and count). Smoothing, grouping, the x axis and log y are applied here, without asking the
 * server again, and written back into the page's address, so the address always reproduces what is shown:
 *   smoothing   EMA with a weight in [0, 1), debiased at the start like TensorBoard's; a bucket of n points
 *               counts as n steps (weight^n), so the curve does not change with the zoom level. The
 *               time-weighted EMA decays by the step distance instead (half-life in steps), which is what
 *               uneven logging needs (evaluations every k steps, skipped steps). The raw line stays, faint.
 *   grouping    runs with the same value of a spec field (e.g. entropy.target) become one line: the mean of
 *               the runs bucket by bucket, with a min/max or +-std band across them (seeds).
 * Zooming fetches the visible step range again: exact when it is small enough. While a compared run can still
 * change, the charts and the summary follow it: every few seconds, while the tab is visible, each chart's whole
 * range is fetched again (a zoomed chart keeps its zoom until it is reset). */
(function () {
  "use strict";
  const C = window.OR1Charts;
  const stateEl = document.getElementById("compare-state");
  if (!stateEl || !window.Plotly || !C) return;
  const state = JSON.parse(stateEl.textContent);
  const runs = state.runs;
  const colorOf = {};
  runs.forEach((r, i) => { colorOf[r.id] = C.PALETTE[i % C.PALETTE.length]; });
  const runById = Object.fromEntries(runs.map((r) => [r.id, r]));

  const $ = (id) => document.getElementById(id);
  const controls = {x: $("cmp-x"), smooth: $("cmp-smooth"), weight: $("cmp-weight"), half: $("cmp-half"),
    group: $("cmp-group"), band: $("cmp-band"), log: $("cmp-log")};
  const DEFAULTS = {x: "step", smooth: "none", weight: "0.8", half: "10", group: "", band: "minmax", log: ""};
  const params = new URLSearchParams(location.search);
  for (const [key, el] of Object.entries(controls)) {
    const value = params.get(key);
    if (value === null) continue;
    if (el.type === "checkbox") el.checked = value === "1"; else el.value = value;
  }

  const full = {};    // metric -> payload for the whole range
  const zoomed = {};  // metric -> payload for the zoomed range, while zoomed
  const charts = Array.from(document.querySelectorAll("#cmp-grid .chart"));

  function settings() {
    return {x: controls.x.value, smooth: controls.smooth.value, weight: Math.min(0.999, Math.max(0, Number(controls.weight.value) || 0)),
      half: Math.max(0.1, Number(controls.half.value) || 10), group: controls.group.value.trim(),
      band: controls.band.value, log: controls.log.checked};
  }

  function syncAddress() {
    const s = settings();
    const values = {x: s.x, smooth: s.smooth, weight: controls.weight.value, half: controls.half.value, group: s.group,
      band: s.band, log: s.log ? "1" : ""};
    for (const [key, value] of Object.entries(values)) {
      if (value === DEFAULTS[key] || value === "") params.delete(key); else params.set(key, value);
    }
    const query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
    $("save-query").value = query;
    const form = $("compare-form");
    form.querySelectorAll("input.chart-param").forEach((el) => el.remove());
    for (const key of Object.keys(DEFAULTS)) {
      if (!params.has(key)) continue;
      const input = document.createElement("input");
      Object.assign(input, {type: "hidden", name: key, value: params.get(key), className: "chart-param"});
      form.appendChild(input);
    }
    $("cmp-weight-label").hidden = s.smooth !== "ema";
    $("cmp-half-label").hidden = s.smooth !== "tema";
  }

  /* The points to smooth and average: bucket means when the series was downsampled, else every point. */
  function basePoints(series, buckets) {
    const lo = buckets ? buckets.lo : 0, width = buckets ? buckets.width : 1;
    if (series.means) {
      // a bucket's mean sits at the middle of its steps, kept within the series' own first and last step
      const m = series.means, first = series.step[0], last = series.step[series.step.length - 1];
      const at = (b) => Math.min(Math.max(lo + b * width + (width - 1) / 2, first), last);
      return m.b.map((b, i) => ({b, s: at(b), y: m.y[i], n: m.n[i]}));
    }
    return series.step.map((s, i) => ({b: Math.floor((s - lo) / width), s, y: series.y[i], n: 1}));
  }

  function smooth(points, s) {
    if (s.smooth === "none") return points.map((p) => p.y);
    const out = [];
    let acc = 0, norm = 0, prev = null;
    for (const p of points) {
      const keep = s.smooth === "ema" ? Math.pow(s.weight, p.n) : (prev === null ? 0 : Math.pow(0.5, (p.s - prev) / s.half));
      acc = acc * keep + (1 - keep) * p.y;
      norm = norm * keep + (1 - keep);
      out.push(norm > 0 ? acc / norm : p.y);
      prev = p.s;
    }
    return out;
  }

  function groupKey(run, path) {
    const spec = run.spec;
    if (Object.prototype.hasOwnProperty.call(spec, path)) {
      const v = spec[path];
      return typeof v === "string" ? v : JSON.stringify(v);
    }
    const parts = Object.keys(spec).filter((k) => k.startsWith(path + ".") || k.startsWith(path + "["));
    if (!parts.length) return "(missing)";
    return JSON.stringify(Object.fromEntries(parts.map((k) => [k.slice(path.length).replace(/^\./, ""), spec[k]])));
  }

  function hexToRgba(hex, alpha) {
    const n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  function mapperFor(payload, runId, axis) {
    const map = payload.xmap ? payload.xmap[String(runId)] : null;
    return C.stepMapper(axis, map, true);
  }

  function runTraces(payload, s) {
    const traces = [];
    for (const series of payload.series) {
      const run = runById[series.run];
      if (!run) continue;
      const toX = mapperFor(payload, series.run, s.x);
      const color = colorOf[series.run];
      const smoothing = s.smooth !== "none";
      traces.push({type: "scatter", mode: series.step.length < 40 ? "lines+markers" : "lines", name: run.label,
        legendgroup: String(series.run), showlegend: !smoothing, x: series.step.map(toX), y: series.y,
        opacity: smoothing ? 0.25 : 1, line: {color, width: smoothing ? 1 : 1.6}, marker: {size: 4},
        hovertemplate: C.HOVER});
      if (smoothing) {
        const base = basePoints(series, payload.buckets);
        traces.push({type: "scatter", mode: "lines", name: run.label, legendgroup: String(series.run),
          x: base.map((p) => toX(p.s)), y: smooth(base, s), line: {color, width: 2}, hovertemplate: C.HOVER});
      }
    }
    return traces;
  }

  function groupTraces(payload, s) {
    const groups = new Map();
    for (const series of payload.series) {
      const run = runById[series.run];
      if (!run) continue;
      const key = groupKey(run, s.group);
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(series);
    }
    const traces = [];
    let g = 0;
    for (const [key, members] of groups) {
      const color = C.PALETTE[g++ % C.PALETTE.length];
      const byBucket = new Map();  // bucket -> {x: [], y: [], raw: []}
      for (const series of members) {
        const toX = mapperFor(payload, series.run, s.x);
        const base = basePoints(series, payload.buckets);
        const smoothed = smooth(base, s);
        base.forEach((p, i) => {
          if (!byBucket.has(p.b)) byBucket.set(p.b, {x: [], y: [], raw: []});
          const cell = byBucket.get(p.b);
          cell.x.push(toX(p.s)); cell.y.push(smoothed[i]); cell.raw.push(p.y);
        });
      }
      const buckets = Array.from(byBucket.keys()).sort((a, b) => a - b);
      const mean = (a) => a.reduce((t, v) => t + v, 0) / a.length;
      const xs = [], ys = [], raw = [], lows = [], highs = [];
      for (const b of buckets) {
        const cell = byBucket.get(b);
        const m = mean(cell.y);
        xs.push(mean(cell.x)); ys.push(m); raw.push(mean(cell.raw));
        if (s.band === "std") {
          const sd = Math.sqrt(mean(cell.y.map((v) => (v - m) * (v - m))));
          lows.push(m - sd); highs.push(m + sd);
        } else {
          lows.push(Math.min(...cell.y)); highs.push(Math.max(...cell.y));
        }
      }
      const name = s.group + " = " + key + " (" + members.length + " run" + (members.length === 1 ? "" : "s") + ")";
      if (s.band !== "none") {
        traces.push({type: "scatter", mode: "lines", x: xs, y: highs, line: {width: 0, color}, showlegend: false,
          legendgroup: key, hoverinfo: "skip", name: name + " band"});
        traces.push({type: "scatter", mode: "lines", x: xs, y: lows, line: {width: 0, color}, fill: "tonexty",
          fillcolor: hexToRgba(color, 0.18), showlegend: false, legendgroup: key, hoverinfo: "skip",
          name: name + " band"});
      }
      if (s.smooth !== "none") {
        traces.push({type: "scatter", mode: "lines", x: xs, y: raw, line: {width: 1, color}, opacity: 0.3,
          showlegend: false, legendgroup: key, name: name + " raw", hovertemplate: C.HOVER});
      }
      traces.push({type: "scatter", mode: xs.length < 40 ? "lines+markers" : "lines", x: xs, y: ys, name,
        legendgroup: key, line: {width: 2, color}, marker: {size: 4}, hovertemplate: C.HOVER});
    }
    return traces;
  }

  function draw(el) {
    const metric = el.dataset.metric;
    const payload = zoomed[metric] || full[metric];
    if (!payload) return;
    const s = settings();
    if (wantsMeans(s) && !payload.withMeans) { refetch(); return; }
    const traces = s.group ? groupTraces(payload, s) : runTraces(payload, s);
    const xTitle = {step: "step", tokens: "tokens seen", time: "hours since the run started"}[s.x];
    const layout = C.baseLayout(metric, xTitle, "linear", s.log);
    layout.uirevision = metric + s.x + s.log;
    if (!payload.series.length) {
      layout.annotations = [{text: "no points", xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false}];
    }
    Plotly.react(el, traces, layout, {responsive: true, displaylogo: false});
    el.dataset.points = String(payload.series.reduce((t, series) => t + series.step.length, 0));
    el.dataset.exact = String(payload.series.every((series) => series.exact));
  }

  /* Bucket means are only sent when smoothing or grouping needs them (a third of the payload). */
  function wantsMeans(s) { return s.smooth !== "none" || s.group !== ""; }

  async function fetchMetric(metric, range) {
    const s = settings();
    const query = new URLSearchParams({runs: runs.map((r) => r.id).join(","), metric, x: s.x});
    if (wantsMeans(s)) query.set("means", "1");
    if (range) { query.set("lo", range[0]); query.set("hi", range[1]); }
    const response = await fetch(state.data_url + "?" + query, {credentials: "same-origin"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }

  let refetching = false;
  function refetch(quiet) {
    if (refetching) return;
    refetching = true;
    loadAll(quiet).finally(() => { refetching = false; });
  }

  let pollTimer = null;
  function schedulePoll() {
    clearTimeout(pollTimer);
    if (!Object.values(full).some((payload) => payload.live)) return;  // every run has ended
    pollTimer = setTimeout(() => {
      if (document.visibilityState === "visible") refetch(true); else schedulePoll();
    }, state.poll_s * 1000);
  }

  async function loadAll(quiet) {
    if (!quiet) $("cmp-status").textContent = "Loading…";
    try {
      await Promise.all(charts.map(async (el) => {
        const metric = el.dataset.metric;
        full[metric] = await fetchMetric(metric);
        full[metric].withMeans = wantsMeans(settings());
        delete zoomed[metric];
        draw(el);
      }));
      const points = charts.reduce((t, el) => t + Number(el.dataset.points), 0);
      const live = Object.values(full).some((payload) => payload.live);
      $("cmp-status").textContent = runs.length + (runs.length === 1 ? " run · " : " runs · ") + points +
        " points drawn" + (live ? " · live, updates every " + state.poll_s + " s" : "");
      summary();
    } catch (err) {
      $("cmp-status").textContent = "Could not load the charts: " + err.message;
    }
    schedulePoll();
  }

  function stepRangeFor(payload, axis, x0, x1) {
    if (axis === "step") return [Math.max(0, Math.floor(x0)), Math.ceil(x1)];
    let lo = Infinity, hi = -Infinity;
    for (const series of payload.series) {
      const map = payload.xmap ? payload.xmap[String(series.run)] : null;
      if (!map) continue;
      const r = C.stepsCovering(map.step, C.stepMapper(axis, map, true), x0, x1);
      if (r) { lo = Math.min(lo, r[0]); hi = Math.max(hi, r[1]); }
    }
    return lo <= hi ? [lo, hi] : null;
  }

  function watchZoom(el) {
    let timer = null;
    el.on("plotly_relayout", (ev) => {
      const metric = el.dataset.metric;
      if (ev["xaxis.autorange"]) {
        if (zoomed[metric]) { delete zoomed[metric]; draw(el); }
        return;
      }
      const x0 = ev["xaxis.range[0]"], x1 = ev["xaxis.range[1]"];
      if (x0 === undefined || x1 === undefined || !full[metric]) return;
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const range = stepRangeFor(full[metric], settings().x, Number(x0), Number(x1));
        if (!range) return;
        try {
          zoomed[metric] = await fetchMetric(metric, range);
          zoomed[metric].withMeans = wantsMeans(settings());
          draw(el);
          $("cmp-status").textContent = metric + ": steps " + range[0] + "–" + range[1] +
            (el.dataset.exact === "true" ? ", every point" : ", downsampled");
        } catch (err) {
          $("cmp-status").textContent = "Could not load the zoomed range: " + err.message;
        }
      }, 250);
    });
  }

  function summary() {
    const table = $("summary-table");
    const metrics = charts.map((el) => el.dataset.metric).filter((m) => full[m]);
    const head = "<thead><tr><th rowspan='2'>Run</th>" + metrics.map((m) => "<th colspan='2'><code>" + escape(m) + "</code></th>").join("") +
      "</tr><tr>" + metrics.map((m) => {
        const d = full[m].direction;
        return "<th>final</th><th>" + (d > 0 ? "best (max)" : d < 0 ? "best (min)" : "range") + "</th>";
      }).join("") + "</tr></thead>";
    const bestOf = {};
    for (const m of metrics) {
      const d = full[m].direction;
      const values = full[m].series.map((s) => (d > 0 ? s.max : s.min)).filter(Boolean).map((p) => p[1]);
      bestOf[m] = d > 0 ? Math.max(...values) : d < 0 ? Math.min(...values) : null;
    }
    const rows = runs.map((run) => {
      const cells = metrics.map((m) => {
        const series = full[m].series.find((s) => s.run === run.id);
        if (!series) return "<td>—</td><td>—</td>";
        const d = full[m].direction;
        const final = series.final ? C.formatNumber(series.final[1]) + " <span class='muted'>@" + series.final[0] + "</span>" : "—";
        let best;
        if (d === 0) {
          best = C.formatNumber(series.min[1]) + " … " + C.formatNumber(series.max[1]);
        } else {
          const p = d > 0 ? series.max : series.min;
          best = C.formatNumber(p[1]) + " <span class='muted'>@" + p[0] + "</span>";
          if (p[1] === bestOf[m]) return "<td>" + final + "</td><td class='best'>" + best + "</td>";
        }
        return "<td>" + final + "</td><td>" + best + "</td>";
      }).join("");
      return "<tr data-run='" + run.id + "'><td class='nowrap'><span class='swatch' style='background:" + colorOf[run.id] +
        "'></span><a href='" + run.url + "'>" + escape(run.label) + "</a></td>" + cells + "</tr>";
    }).join("");
    table.innerHTML = head + "<tbody>" + rows + "</tbody>";
  }

  function escape(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  }

  function redraw() { syncAddress(); charts.forEach(draw); }

  for (const key of ["smooth", "weight", "half", "group", "band", "log"]) {
    controls[key].addEventListener(key === "group" || key === "weight" || key === "half" ? "input" : "change", redraw);
  }
  controls.x.addEventListener("change", () => { syncAddress(); loadAll(); });
  charts.forEach((el) => {
    Plotly.newPlot(el, [], C.baseLayout(el.dataset.metric, "", "linear", false), {responsive: true, displaylogo: false});
    watchZoom(el);
  });
  syncAddress();
  loadAll();
})();
