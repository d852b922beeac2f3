// The pass-count histogram of a difficulty job: problems per number of accepted answers (0..n), with the
// never- and always-solved bars (what OR1's filter drops) in grey. plotly.js is served by the platform.
(function () {
  const node = document.getElementById("difficulty-histogram");
  const data = document.getElementById("histogram-data");
  if (!node || !data || !window.Plotly) return;
  const bars = JSON.parse(data.textContent);
  const colours = bars.counts.map((c) => (c === 0 || c === bars.n ? "#a0a4ab" : "#3b6fd6"));
  Plotly.newPlot(
    node,
    [{ type: "bar", x: bars.counts, y: bars.problems, marker: { color: colours },
       hovertemplate: "solved %{x} of " + bars.n + ": %{y} problems<extra></extra>" }],
    { margin: { t: 10, r: 10, b: 50, l: 50 }, bargap: 0.1,
      xaxis: { title: { text: "answers accepted (of " + bars.n + ")" }, dtick: 1 },
      yaxis: { title: { text: "problems" } } },
    { displayModeBar: false, responsive: true }
  );
})();
