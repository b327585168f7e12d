// The Experiments tab's grid clicks (served by the app, no CDN). gr.Plot has no click event, so this runs as the
// js_on_load of a hidden gr.HTML (visualizer/ui/tabs/experiments.py): a click on a cell of either layer x head grid
// becomes that component's click event, carrying the cell's layer (y) and head (x). `trigger` is Gradio's.
const grids = ["itl-exp-heads", "itl-exp-head-grid"];  // = GRID_IDS in experiments.py
function attach(plot) {
  if (plot.dataset.itlExpClick) return;  // Gradio redraws with Plotly.react, which keeps the listener
  plot.dataset.itlExpClick = "1";
  plot.on("plotly_click", (event) => {
    const point = event && event.points && event.points[0];
    if (point) trigger("click", { layer: Number(point.y), head: Number(point.x) });
  });
}
new MutationObserver(() => {
  document.querySelectorAll(grids.map((id) => "#" + id + " .js-plotly-plot").join(", ")).forEach((plot) => {
    if (typeof plot.on === "function") attach(plot);
  });
}).observe(document.documentElement, { childList: true, subtree: true });
