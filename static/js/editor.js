// The editor's live numbers: each source's share of the data mix, and each stage's start step and N_SGD,
// recomputed as the user types and after htmx swaps a table in. The server renders the same numbers, so the
// page is right without JavaScript too; this only keeps them current between saves.
(function () {
  "use strict";

  function value(row, suffix) {
    const input = row.querySelector("[name$='-" + suffix + "']");
    const text = input ? input.value.trim() : "";
    return text === "" ? NaN : Number(text);
  }

  function updateMix() {
    const rows = Array.from(document.querySelectorAll("#sources-section tbody tr[data-row]"));
    const weights = rows.map((row) => value(row, "weight"));
    const valid = weights.length > 0 && weights.every((w) => Number.isFinite(w) && w > 0);
    const total = weights.reduce((a, b) => a + b, 0);
    rows.forEach((row, i) => {
      row.querySelector("[data-share]").textContent = valid ? ((100 * weights[i]) / total).toFixed(1) + "%" : "—";
    });
  }

  function updateStages() {
    const rows = Array.from(document.querySelectorAll("#stages-section tbody tr[data-row]"));
    let start = 0;
    rows.forEach((row) => {
      const rollout = value(row, "rollout_batch");
      const mini = value(row, "mini_batch");
      const cell = row.querySelector("[data-n-sgd]");
      const known = Number.isInteger(rollout) && Number.isInteger(mini) && rollout > 0 && mini > 0;
      const whole = known && rollout % mini === 0;
      cell.textContent = known ? (whole ? String(rollout / mini) : (rollout / mini).toFixed(2)) : "—";
      cell.classList.toggle("bad", known && !whole);
      cell.title = known && !whole ? "The rollout batch must be a multiple of the mini-batch" : "";
      row.querySelector("[data-start]").textContent = Number.isInteger(start) ? String(start) : "—";
      const steps = value(row, "steps");
      start = Number.isInteger(steps) && Number.isInteger(start) ? start + steps : NaN;
    });
    const total = document.querySelector("#stages-section [data-total-steps]");
    if (total) total.textContent = Number.isInteger(start) ? start + " steps in all" : "";
  }

  // Fields that only mean something for one launcher (the Slurm cluster) show only when it is chosen.
  function updateLauncher() {
    const launcher = document.querySelector("[name='resources-launcher']");
    document.querySelectorAll("[data-launcher]").forEach((input) => {
      const field = input.closest(".field") || input;
      field.style.display = !launcher || launcher.value === input.dataset.launcher ? "" : "none";
    });
  }

  function update() {
    updateMix();
    updateStages();
    updateLauncher();
  }

  document.addEventListener("input", (event) => {
    if (event.target.closest("#sources-section, #stages-section")) update();
  });
  document.addEventListener("change", (event) => {
    if (event.target.name === "resources-launcher") updateLauncher();
  });
  document.addEventListener("htmx:afterSettle", update);
  document.addEventListener("DOMContentLoaded", update);
})();
