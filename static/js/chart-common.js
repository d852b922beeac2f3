/* Shared by the run page's charts (charts.js) and the comparison dashboard (compare.js).
 *
 * Series arrive as parallel arrays {step: [...], y: [...]}, already downsampled by the server. The x axes other
 * than "step" come from monotone maps (step -> tokens seen, step -> wall time) that are interpolated here, so
 * no point needs to carry its own time stamp. */
(function () {
  "use strict";

  const PALETTE = ["#2457c5", "#d1495b", "#1f7a44", "#e8a33d", "#6b5bd6", "#00798c", "#a15c00", "#8a8f98",
    "#c0398c", "#3d9970", "#5c6370", "#b42318"];

  /* Index of the last element of a sorted array that is <= value (-1 when none). */
  function floorIndex(sorted, value) {
    let lo = 0, hi = sorted.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid] <= value) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  }

  /* Linear interpolation of a monotone map {from: [...], to: [...]} at value; clamped at both ends. */
  function interpolate(from, to, value) {
    if (!from.length) return null;
    const i = floorIndex(from, value);
    if (i < 0) return to[0];
    if (i >= from.length - 1) return to[from.length - 1];
    const span = from[i + 1] - from[i];
    return span ? to[i] + (to[i + 1] - to[i]) * (value - from[i]) / span : to[i];
  }

  /* A step -> x function for an axis: "step" is the identity; "tokens" and "time" interpolate a map
   * {step: [...], x: [...]}; "tokens" starts from 0 tokens at step 0 (nothing trained yet). Time is in
   * seconds; `origin` shifts it (relative hours for comparisons) or leaves epoch milliseconds (a date axis). */
  function stepMapper(axis, map, relative) {
    if (axis === "step") return (s) => s;
    if (!map || !map.step.length) return () => null;
    let steps = map.step, xs = map.x;
    if (axis === "tokens" && steps[0] > 0) { steps = [0].concat(steps); xs = [0].concat(xs); }
    if (axis === "tokens") return (s) => interpolate(steps, xs, s);
    const origin = xs[0];
    if (relative) return (s) => (interpolate(steps, xs, s) - origin) / 3600;
    return (s) => interpolate(steps, xs, s) * 1000;
  }

  /* The inverse of a step -> x mapper over a range: the steps [lo, hi] that the x range [x0, x1] covers,
   * found on the map's own steps (one on each side, so the edges are included). */
  function stepsCovering(steps, mapper, x0, x1) {
    if (!steps.length) return null;
    const xs = steps.map(mapper);
    const a = Math.max(0, floorIndex(xs, x0));
    const b = Math.min(steps.length - 1, floorIndex(xs, x1) + 1);
    return [steps[a], steps[b]];
  }

  function formatNumber(v) {
    if (v === null || v === undefined) return "—";
    if (v === 0) return "0";
    const a = Math.abs(v);
    return (a < 1e-3 || a >= 1e5) ? v.toPrecision(4) : String(Number(v.toPrecision(5)));
  }

  function formatTokens(n) {
    if (n >= 1024 && n % 1024 === 0) return (n / 1024) + "k";
    return String(n);
  }

  /* Vertical lines at the stage boundaries, each labelled with the stage's context length. */
  function stageShapes(stages, toX) {
    const shapes = [];
    for (const stage of stages) {
      if (stage.index === 0) continue;
      const x = toX(stage.start);
      if (x === null || x === undefined) continue;
      shapes.push({
        type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1,
        line: {color: "#68707c", width: 1, dash: "dot"},
        label: {text: "stage " + (stage.index + 1) + " · " + formatTokens(stage.tokens) + " tok",
          textposition: "end", textangle: 0, xanchor: "left", font: {size: 10, color: "#68707c"}},
      });
    }
    return shapes;
  }

  /* Plotly pads a constant series (a fixed learning rate) to +-1, which draws a 1e-6 line against ticks from
   * -1 to 1. Give such an axis a range around its value instead; null when the data has a spread. A series
   * flat at zero (an entropy coefficient not yet raised, no clipping) gets 0..1: it lies along the bottom,
   * not in the middle of the chart, where it would read as a value on the other axis. */
  function flatRange(traces, log) {
    let lo = Infinity, hi = -Infinity;
    for (const t of traces) for (const v of t.y) if (v !== null && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (!isFinite(lo) || hi - lo > 1e-9 * Math.max(Math.abs(hi), Math.abs(lo), 1e-300)) return null;
    if (log) return lo > 0 ? [Math.log10(lo) - 0.5, Math.log10(lo) + 0.5] : null;
    if (lo === 0) return [0, 1];
    const pad = Math.abs(lo) * 0.5;
    return [lo - pad, hi + pad];
  }

  const HOVER = "%{fullData.name}: %{y:.10~g}<extra></extra>";

  function baseLayout(title, xTitle, xType, logY) {
    return {
      title: {text: title, font: {size: 14}, x: 0.01, xanchor: "left"},
      margin: {l: 55, r: 55, t: 36, b: 40},
      height: 300,
      hovermode: "x unified",
      xaxis: {title: {text: xTitle, font: {size: 11}}, type: xType, zeroline: false},
      yaxis: {type: logY ? "log" : "linear", zeroline: false, exponentformat: "e"},
      legend: {orientation: "h", y: -0.22, font: {size: 11}},
      paper_bgcolor: "#fff", plot_bgcolor: "#fff",
    };
  }

  window.OR1Charts = {PALETTE, floorIndex, interpolate, stepMapper, stepsCovering, formatNumber, formatTokens,
    stageShapes, baseLayout, flatRange, HOVER};
})();
