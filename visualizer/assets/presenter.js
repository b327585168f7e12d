// Presenter mode, the follower's side (the project's own script; run by gr.HTML's js_on_load, so once per page).
// A page opened with ?follow=CODE polls a tiny JSON route once a second; only when the room's version moves does
// it ask the server (one Gradio event) to set its tab, prompt and controls from the room, and then it clicks the
// open tab's "show" button so the views are re-sliced from the server's trace cache.
(function () {
  if (window.itlPresenter) return;
  var POLL_MS = 1000;
  // Buttons that would start new model work per follower (a timed race), never clicked for a follower.
  var NEVER_CLICK = ["itl-kv-start", "itl-kv-sweep", "itl-generate", "itl-sampling-generate", "itl-batch-run"];
  var code = new URLSearchParams(window.location.search).get("follow");
  var me = { code: code, version: null, stopped: !code, timer: null, polls: 0 };

  function base() {
    var path = window.location.pathname;
    return path.endsWith("/") ? path : path.replace(/[^/]*$/, "");
  }

  function box() {
    return document.querySelector("#itl-follow-box textarea, #itl-follow-box input");
  }

  function send() {
    var input = box();
    if (!input) { me.version = null; return; }  // the page is not mounted yet: try on the next poll
    input.value = me.code + ":" + me.version;
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function poll() {
    if (me.stopped) return;
    me.polls += 1;
    fetch(base() + "itl/rooms/" + encodeURIComponent(me.code) + "/version", { cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : { version: "gone" }; })
      .then(function (answer) {
        if (answer.version !== me.version) {
          me.version = answer.version;
          send();
        }
        if (answer.version === "gone") me.stopped = true;  // the server has said so; the bar tells the student
      })
      .catch(function () { /* a dropped poll: the next one will tell */ })
      .finally(function () { if (!me.stopped) me.timer = setTimeout(poll, POLL_MS); });
  }

  function openPanel() {
    var panels = document.querySelectorAll('[role="tabpanel"]');
    for (var i = 0; i < panels.length; i++) {
      if (panels[i].offsetParent !== null) return panels[i];
    }
    return null;
  }

  function refresh() {
    if (!me.code || me.detached) return;
    var panel = openPanel();
    if (!panel) return;
    var buttons = panel.querySelectorAll("button.primary");
    for (var i = 0; i < buttons.length; i++) {
      var id = buttons[i].id || "";
      if (NEVER_CLICK.indexOf(id) === -1 && buttons[i].offsetParent !== null && !buttons[i].disabled) {
        buttons[i].click();
        return;
      }
    }
  }

  function detach() {
    me.stopped = true;
    me.detached = true;
    clearTimeout(me.timer);
    document.body.classList.remove("itl-following");
    var url = new URL(window.location.href);
    url.searchParams.delete("follow");
    window.history.replaceState(null, "", url.toString());  // a reload no longer follows
  }

  window.itlPresenter = { refresh: refresh, detach: detach, state: me };
  if (me.code) {
    document.body.classList.add("itl-following");
    poll();
  }
})();
