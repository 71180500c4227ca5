// creditgate's dashboard script (docs/dashboard.md): the live balance over server-sent events,
// copy buttons, and the usage charts (uPlot). Loaded as a file: the CSP allows no inline script.
"use strict";

function liveBalance() {
  const section = document.querySelector("[data-live-balance]");
  if (!section || !window.EventSource) return;
  const status = document.querySelector("[data-testid=live-status]");
  const source = new EventSource(section.dataset.liveBalance);
  const put = (id, value) => {
    const el = document.querySelector("[data-testid=" + id + "]");
    if (el && value !== undefined) el.textContent = value;
  };
  source.addEventListener("balance", (e) => {
    const b = JSON.parse(e.data);
    put("balance", b.available);
    put("balance-usd", b.available_usd);
    put("pending", b.pending);
    put("pending-usd", b.pending_usd);
    put("posted", b.balance);
    put("posted-usd", b.balance_usd);
    section.dataset.updates = String(Number(section.dataset.updates || "0") + 1);
  });
  source.addEventListener("error", () => {
    if (status) status.textContent = "Live updates paused; reload the page to resume.";
  });
}

function copyButtons() {
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = "Copied";
      } catch (_) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
    });
  });
}

function charts(root) {
  if (!window.uPlot) return;
  root.querySelectorAll("[data-chart]").forEach((el) => {
    const data = document.getElementById(el.dataset.chart);
    if (!data || el.dataset.drawn) return;
    const spec = JSON.parse(data.textContent);
    el.dataset.drawn = "1";
    const colors = ["#0b5cad", "#d1242f", "#1a7f37", "#8250df", "#bf8700", "#57606a"];
    const series = [{ label: spec.x_label }].concat(spec.series.map((s, i) => ({
      label: s.label, stroke: colors[i % colors.length], width: 2,
      fill: spec.kind === "bars" ? colors[i % colors.length] + "55" : undefined,
      paths: spec.kind === "bars" && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6, 64] }) : undefined,
    })));
    const width = Math.max(280, el.clientWidth || 600);
    const opts = {
      width: width, height: 260, series: series,
      scales: { x: spec.time ? { time: true } : { time: false, range: () => [-0.5, spec.x.length - 0.5] } },
      axes: [{ values: spec.time ? undefined : (u, ticks) => ticks.map((t) => spec.x_names[t] || "") }, {}],
    };
    // Credits travel as exact decimal strings; the chart only draws them.
    const columns = [spec.x].concat(spec.series.map((s) => s.values.map(Number)));
    new uPlot(opts, columns, el);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  liveBalance();
  copyButtons();
  charts(document);
});
document.addEventListener("htmx:afterSwap", (e) => {
  charts(e.target);
  copyButtons();
});
