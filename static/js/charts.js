/* The run page's live charts.
 *
 * One request loads every panel's series (downsampled on the server); then, every few seconds while the tab
 * is visible and the run can change, a poll asks only for the points past the last step the page holds and
 * appends them. Zooming a chart fetches that step range again, exact when it is small enough, and splices it
 * into the page's copy of the series, so every chart sharing a metric gets the detail. The x axis (step, wall
 * time, tokens seen) and a log y axis are switched here without asking the server.
 *
 * Each chart element carries data-points: the number of points of its first line (the browser tests read it). */
(function () {
  "use strict";
  const C = window.OR1Charts;
  const root = document.getElementById("run-charts");
  if (!root || !window.Plotly || !C) return;

  const CLOCK = "~clock", TOKENS = "perf/total_tokens";
  const url = root.dataset.url;
  const pollMs = 1000 * Number(root.dataset.poll || 3);
  const grid = document.getElementById("chart-grid");
  const status = document.getElementById("chart-status");
  const axisSelect = document.getElementById("chart-x");
  const logBox = document.getElementById("chart-log");

  const store = {};  // series name -> {step: [], y: []}, sorted by step
  let panels = [], stages = [], evals = "", live = true, timer = null, busy = false;

  function names() {
    const all = new Set([TOKENS, CLOCK]);
    for (const p of panels) for (const t of p.traces) all.add(t.name);
    return Array.from(all);
  }

  function lastStep(name) {
    const s = store[name];
    return s && s.step.length ? s.step[s.step.length - 1] : -1;
  }

  function toX() {
    const axis = axisSelect.value;
    if (axis === "step") return (s) => s;
    const map = store[axis === "tokens" ? TOKENS : CLOCK];
    return C.stepMapper(axis, map ? {step: map.step, x: map.y} : null, false);
  }

  /* Replace the points of `name` inside [lo, hi] by `incoming` (a zoomed fetch), or append past the end. */
  function splice(name, incoming, lo, hi) {
    const s = store[name] || (store[name] = {step: [], y: []});
    const keepStep = [], keepY = [];
    for (let i = 0; i < s.step.length; i++) {
      if (s.step[i] < lo || s.step[i] > hi) { keepStep.push(s.step[i]); keepY.push(s.y[i]); }
    }
    const steps = keepStep.concat(incoming.step), ys = keepY.concat(incoming.y);
    const order = steps.map((_, i) => i).sort((a, b) => steps[a] - steps[b]);
    s.step = order.map((i) => steps[i]);
    s.y = order.map((i) => ys[i]);
  }

  function append(name, incoming) {
    const s = store[name] || (store[name] = {step: [], y: []});
    const last = lastStep(name);
    for (let i = 0; i < incoming.step.length; i++) {
      if (incoming.step[i] > last) { s.step.push(incoming.step[i]); s.y.push(incoming.y[i]); }
    }
  }

  function stageLimitTrace(x) {
    if (!stages.length) return null;
    const xs = [], ys = [];
    for (const st of stages) { xs.push(x(st.start)); ys.push(st.tokens); }
    const last = stages[stages.length - 1];
    xs.push(x(last.end)); ys.push(last.tokens);
    return {type: "scatter", mode: "lines", name: "stage limit (max response tokens)", x: xs, y: ys,
      line: {shape: "hv", dash: "dot", color: "#8a8f98", width: 1}, hovertemplate: C.HOVER};
  }

  function render(panel) {
    const el = document.getElementById("chart-" + panel.id);
    if (!el) return;
    const x = toX();
    const axis = axisSelect.value;
    const traces = [];
    let mainPoints = 0, hasY2 = false;
    panel.traces.forEach((t, i) => {
      const s = store[t.name];
      if (!s || !s.step.length) return;
      if (i === 0) mainPoints = s.step.length;
      hasY2 = hasY2 || t.axis === "y2";
      traces.push({
        type: "scatter", mode: s.step.length < 40 ? "lines+markers" : "lines", name: t.label,
        x: s.step.map(x), y: s.y, yaxis: t.axis === "y2" ? "y2" : "y",
        line: {dash: t.dash, width: 1.6, color: C.PALETTE[i % C.PALETTE.length]}, marker: {size: 4},
        hovertemplate: C.HOVER,
      });
    });
    if (panel.stage_limit && traces.length) {
      const limit = stageLimitTrace(x);
      if (limit) traces.push(limit);
    }
    const xTitle = {step: "step", time: "wall time (UTC)", tokens: "tokens seen"}[axis];
    const layout = C.baseLayout(panel.title, xTitle, axis === "time" ? "date" : "linear", logBox.checked);
    layout.yaxis.title = {text: panel.y_title, font: {size: 11}};
    if (hasY2) {
      layout.yaxis2 = {overlaying: "y", side: "right", showgrid: false, zeroline: false, tickmode: "auto",
        type: logBox.checked ? "log" : "linear", title: {text: panel.y2_title, font: {size: 11}},
        exponentformat: "e"};
      layout.margin.r = 70;
    }
    for (const [axis, key] of [["y", "yaxis"], ["y2", "yaxis2"]]) {
      const range = C.flatRange(traces.filter((t) => t.yaxis === axis), logBox.checked);
      if (range && layout[key]) layout[key].range = range;
    }
    if (axis === "step" && stages.length) {
      // the run's planned length: how far it has come reads at a glance, and a stage boundary is never the
      // chart's right edge (where its label would be cut off)
      let seen = 0;
      for (const t of traces) for (const v of t.x) if (v > seen) seen = v;
      layout.xaxis.range = [0, Math.max(stages[stages.length - 1].end, seen)];
    }
    layout.shapes = C.stageShapes(stages, x);
    for (const g of panel.guides) {
      if (g.y0 !== undefined) {
        layout.shapes.push({type: "rect", xref: "paper", x0: 0, x1: 1, yref: "y", y0: g.y0, y1: g.y1,
          fillcolor: "rgba(31,122,68,0.08)", line: {width: 0}, layer: "below",
          label: {text: g.label, textposition: "top left", font: {size: 10, color: "#1f7a44"}}});
      } else {
        layout.shapes.push({type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: g.y, y1: g.y,
          line: {color: "#1f7a44", width: 1.2, dash: "dash"},
          label: {text: g.label, textposition: "end", font: {size: 10, color: "#1f7a44"}}});
      }
    }
    if (!traces.length) {
      layout.annotations = [{text: "no points yet", xref: "paper", yref: "paper", x: 0.5, y: 0.5,
        showarrow: false, font: {color: "#68707c"}}];
    }
    layout.uirevision = panel.id + axis + logBox.checked;
    Plotly.react(el, traces, layout, {responsive: true, displaylogo: false});
    el.dataset.points = String(mainPoints);
  }

  function renderAll() { panels.forEach(render); }

  function buildGrid() {
    grid.innerHTML = "";
    for (const panel of panels) {
      const el = document.createElement("div");
      el.className = "chart";
      el.id = "chart-" + panel.id;
      el.dataset.points = "0";
      grid.appendChild(el);
    }
    for (const panel of panels) {
      const el = document.getElementById("chart-" + panel.id);
      Plotly.newPlot(el, [], C.baseLayout(panel.title, "", "linear", false), {responsive: true, displaylogo: false});
      el.on("plotly_relayout", (ev) => onZoom(panel, ev));
    }
  }

  async function getJSON(query) {
    const response = await fetch(url + query, {headers: {Accept: "application/json"}, credentials: "same-origin"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }

  async function loadAll() {
    const data = await getJSON("");
    for (const key of Object.keys(store)) delete store[key];
    for (const [name, s] of Object.entries(data.series)) store[name] = {step: s.step, y: s.y};
    const layoutChanged = JSON.stringify(data.panels.map((p) => p.id)) !== JSON.stringify(panels.map((p) => p.id));
    panels = data.panels;
    stages = data.stages;
    evals = JSON.stringify(data.evals);
    live = data.live;
    if (layoutChanged) buildGrid();
    renderAll();
    note();
  }

  let zoomTimer = null;
  function onZoom(panel, ev) {
    const x0 = ev["xaxis.range[0]"], x1 = ev["xaxis.range[1]"];
    if (x0 === undefined || x1 === undefined) return;
    clearTimeout(zoomTimer);
    zoomTimer = setTimeout(async () => {
      const axis = axisSelect.value;
      let range;
      if (axis === "step") {
        range = [Math.floor(x0), Math.ceil(x1)];
      } else {
        const map = store[axis === "tokens" ? TOKENS : CLOCK];
        // a date axis reports its range as "YYYY-MM-DD HH:MM:SS.sss" in UTC; the mapper gives milliseconds
        const asX = (v) => axis === "time" ? Date.parse(String(v).replace(" ", "T") + "Z") : Number(v);
        range = map ? C.stepsCovering(map.step, toX(), asX(x0), asX(x1)) : null;
      }
      if (!range) return;
      const lo = Math.max(0, range[0]), hi = Math.max(lo, range[1]);
      const wanted = panel.traces.map((t) => t.name).join(",");
      try {
        const data = await getJSON("?names=" + encodeURIComponent(wanted) + "&lo=" + lo + "&hi=" + hi);
        for (const [name, s] of Object.entries(data.series)) splice(name, s, lo, hi);
        const exact = Object.values(data.series).every((s) => s.exact);
        renderAll();
        note(exact ? "zoomed: every point of steps " + lo + "–" + hi : "zoomed: steps " + lo + "–" + hi + " (downsampled)");
      } catch (err) {
        note("could not load the zoomed range: " + err.message);
      }
    }, 250);
  }

  function note(text) {
    status.textContent = text || (live ? "live · updates every " + pollMs / 1000 + " s" : "run ended");
  }

  async function poll() {
    timer = null;
    if (!live || document.visibilityState !== "visible" || busy) { schedule(); return; }
    busy = true;
    try {
      const after = {};
      for (const name of names()) after[name] = lastStep(name);
      const data = await getJSON("?after=" + encodeURIComponent(JSON.stringify(after)));
      if (data.reset || JSON.stringify(data.evals) !== evals) {
        await loadAll();
      } else {
        let changed = false;
        for (const [name, s] of Object.entries(data.append)) { append(name, s); changed = changed || s.step.length > 0; }
        live = data.live;
        if (changed || !live) renderAll();
        note();
      }
    } catch (err) {
      note("update failed (" + err.message + "); retrying");
    } finally {
      busy = false;
      schedule();
    }
  }

  function schedule() {
    if (live && timer === null) timer = setTimeout(poll, pollMs);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && live) { clearTimeout(timer); timer = null; poll(); }
  });
  axisSelect.addEventListener("change", renderAll);
  logBox.addEventListener("change", renderAll);

  loadAll().then(schedule).catch((err) => { grid.innerHTML = ""; note("could not load the charts: " + err.message); });
})();
