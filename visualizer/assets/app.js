// The project's own page script (served by the app, no CDN). gr.Plot and gr.HTML have no click events, so clicks
// on charts and token chips are written into hidden textboxes whose change events the server handles. It also
// greys results made from an earlier prompt, adds PNG/SVG buttons to every chart and builds the copy-link URL.
(function () {
  var STYLE = [
    ".itl-stale .itl-out { opacity: 0.35; filter: grayscale(1); transition: opacity 0.2s; }",
    ".itl-stale-label { display: none; margin: 4px 0; padding: 4px 10px; border-radius: 6px;",
    "  background: #fff4d6; color: #5a4200; font-weight: 600; }",
    ".itl-stale > .itl-stale-label, .itl-stale .itl-stale-label { display: block; }",
    ".itl-chip { cursor: pointer; }",
    ".itl-image-buttons { display: flex; gap: 6px; justify-content: flex-end; margin: 2px 4px; }",
    ".itl-image-buttons button { font-size: 0.85em; padding: 1px 8px; border: 1px solid #ccc;",
    "  border-radius: 4px; background: #fafafa; cursor: pointer; }",
  ].join("\n");

  function write(boxId, value) {
    var box = document.querySelector("#" + boxId + " textarea, #" + boxId + " input");
    if (!box) return;
    box.value = value + "," + Date.now();  // a new value each click: .change fires
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }

  // --- clicks on charts ---------------------------------------------------------------------------------------
  var PLOT_CLICKS = {
    "itl-summary-grid": function (p) { write("itl-grid-click", p.y + "," + p.x); },
    "itl-attn-layer-heads": function (p) { write("itl-head-click", String(p.curveNumber)); },
    "itl-lens": function (p) { write("itl-position-click", String(p.x)); },
  };

  function attachClick(plot, handler) {
    if (plot.dataset.itlClick) return;
    plot.dataset.itlClick = "1";
    plot.on("plotly_click", function (event) {
      var point = event && event.points && event.points[0];
      if (point) handler(point);
    });
  }

  // --- PNG and SVG of every chart -----------------------------------------------------------------------------
  function chartName(plot) {
    var owner = plot.closest("[id^='itl-']");
    return owner ? owner.id.replace(/^itl-/, "") : "chart";
  }

  function addImageButtons(plot) {
    if (plot.dataset.itlImages || typeof window.Plotly === "undefined") return;
    plot.dataset.itlImages = "1";
    var bar = document.createElement("div");
    bar.className = "itl-image-buttons";
    ["png", "svg"].forEach(function (format) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = "⬇ " + format.toUpperCase();
      button.className = "itl-image-" + format;
      button.title = "Download this chart as " + format.toUpperCase();
      button.addEventListener("click", function () {
        window.Plotly.downloadImage(plot, { format: format, filename: "inside-the-llm-" + chartName(plot),
                                            scale: format === "png" ? 2 : 1 });
      });
      bar.appendChild(button);
    });
    plot.parentNode.insertBefore(bar, plot);
  }

  // --- token chips: click sets the position ---------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var chip = event.target.closest && event.target.closest("#itl-token-chips .itl-chip");
    if (!chip) return;
    var chips = Array.prototype.slice.call(document.querySelectorAll("#itl-token-chips .itl-chip"));
    write("itl-position-click", String(chips.indexOf(chip)));
  });

  // --- results from an earlier prompt are greyed until redrawn -------------------------------------------------
  function promptText() {
    var box = document.querySelector("#itl-prompt textarea");
    return box ? box.value : null;
  }

  function markStale() {
    var prompt = promptText();
    if (prompt === null) return;
    document.querySelectorAll("[id^='itl-made-']").forEach(function (marker) {
      var box = marker.querySelector("textarea, input");
      var panel = marker.closest("[role='tabpanel']") || marker.parentNode;
      if (!box || !panel) return;
      var made = null;
      try { made = box.value ? JSON.parse(box.value)[0] : null; } catch (e) { made = null; }
      var stale = made !== null && made !== prompt;
      var label = panel.querySelector(":scope .itl-stale-label");
      if (!label) {
        label = document.createElement("div");
        label.className = "itl-stale-label";
        label.setAttribute("role", "status");
        label.textContent = marker.classList.contains("itl-made-manual")
          ? "These results are from an earlier prompt — press Start to time this one."
          : "These results are from an earlier prompt — refreshing…";
        panel.insertBefore(label, panel.firstChild);
      }
      panel.classList.toggle("itl-stale", stale);
    });
  }

  function scan() {
    Object.keys(PLOT_CLICKS).forEach(function (id) {
      document.querySelectorAll("#" + id + " .js-plotly-plot").forEach(function (plot) {
        if (typeof plot.on === "function") attachClick(plot, PLOT_CLICKS[id]);
      });
    });
    document.querySelectorAll(".js-plotly-plot").forEach(function (plot) {
      if (typeof plot.on === "function") addImageButtons(plot);
    });
  }

  // --- the copy-link button and the download buttons the server fills -------------------------------------------
  window.itlCopyLink = function (keys, tabKeys, values) {
    var params = new URLSearchParams();
    var tab = values[1] || "";
    if (tab) params.set("tab", tab);
    if (values[0]) params.set("prompt", values[0]);
    keys.forEach(function (key, i) {
      var value = values[i + 2];
      if ((tabKeys[tab] || []).indexOf(key) >= 0 && value !== null && value !== undefined && value !== "") {
        params.set(key, String(value));
      }
    });
    var url = location.origin + location.pathname + "?" + params.toString().replace(/\+/g, "%20");
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(url).catch(function () { /* the box below shows it to copy by hand */ });
    }
    setTimeout(function () {
      var box = document.querySelector("#itl-link-box textarea, #itl-link-box input");
      if (box) { box.focus(); box.select(); }
    }, 100);
    return url;
  };

  window.itlClickDownload = function (id) {
    var target = document.querySelector("#" + id + " a[href], #" + id + " button, #" + id);
    if (target) target.click();
  };

  // --- keyboard on sliders: Gradio sends a slider's "release" on pointer-up (range) and on blur (number box), so
  // Enter in the number box and the arrow keys on the range would change the number but not the charts.
  var KEY_RELEASE_MS = 300;
  var SLIDER_KEYS = ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown"];
  function onSliderKey(event) {
    var target = event.target;
    if (!target || !target.closest || !target.closest(".block")) return;
    if (event.type === "keydown" && event.key === "Enter" && target.type === "number") {
      target.blur();  // the box applies its value, as a click elsewhere would
    } else if (event.type === "keyup" && target.type === "range" && SLIDER_KEYS.indexOf(event.key) >= 0) {
      // one release when the keys stop, as one mouse release ends a drag (not one request per key press)
      clearTimeout(target.itlKeyRelease);
      target.itlKeyRelease = setTimeout(function () {
        target.dispatchEvent(new PointerEvent("pointerup", { bubbles: true }));
      }, KEY_RELEASE_MS);
    }
  }

  function start() {
    document.addEventListener("keydown", onSliderKey, true);
    document.addEventListener("keyup", onSliderKey, true);
    var style = document.createElement("style");
    style.textContent = STYLE;
    document.head.appendChild(style);
    new MutationObserver(scan).observe(document.documentElement, { childList: true, subtree: true });
    setInterval(markStale, 250);  // cheap: a few string compares, in the page only
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
