// The project's own page script (served by the app, no CDN). gr.Plot has no click event, so a click on a cell
// of the attention summary grid is written into a hidden textbox, whose input event the server handles.
(function () {
  function attach(plot) {
    if (plot.dataset.itlClick) return;
    plot.dataset.itlClick = "1";
    plot.on("plotly_click", function (event) {
      var point = event && event.points && event.points[0];
      if (!point) return;
      var box = document.querySelector("#itl-grid-click textarea, #itl-grid-click input");
      if (!box) return;
      box.value = point.y + "," + point.x + "," + Date.now();  // a new value each click: .change fires
      box.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }
  new MutationObserver(function () {
    document.querySelectorAll("#itl-summary-grid .js-plotly-plot").forEach(function (plot) {
      if (typeof plot.on === "function") attach(plot);
    });
  }).observe(document.documentElement, { childList: true, subtree: true });
})();
