// A stand-in for RequireJS, just enough for bertviz's head view and model view.
//
// bertviz's scripts call require.config({paths: ...}) and requirejs(["jquery", "d3"], callback).
// In our iframe, d3 and jQuery are loaded beforehand by plain <script> tags served by the app (no
// CDN), so "loading" a module only means handing the global that script created to the callback.
// Load this file AFTER d3 and jQuery: it defines no `define.amd`, so they register as globals.
(function (global) {
  "use strict";

  var GLOBAL_NAMES = { d3: "d3", jquery: "jQuery" };

  function moduleFor(name) {
    var value = global[GLOBAL_NAMES[name] || name];
    if (value === undefined) {
      throw new Error("amd-shim: '" + name + "' was not loaded by a <script> tag before the view");
    }
    return value;
  }

  function requirejs(deps, callback) {
    var modules = (deps || []).map(moduleFor);
    if (typeof callback === "function") {
      return callback.apply(global, modules);
    }
    return undefined;
  }

  // The page's <script> tags already decide where the libraries come from: paths are ignored.
  requirejs.config = function () {};

  global.requirejs = requirejs;
  global.require = requirejs;
})(window);
