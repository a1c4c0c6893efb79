// Parlo widget loader: the only script a host page includes.
// Owns the launcher shown at once, the closed shadow root the widget lives in, and the
// verified loading of every other file. It never reads configuration that could change
// where it connects: the API origin is the origin this very script was loaded from.
// `parlo-publish` bakes the version and the SRI hash of every bundle file into it, so a
// page that pins this script with `integrity` pins the whole bundle.
(function () {
  "use strict";
  var VERSION = "__PARLO_VERSION__";
  var HASHES = __PARLO_HASHES__;
  var me = document.currentScript;
  // Only a classic <script src> can tell us our origin; anything else refuses to start.
  if (!me || !me.src) {
    console.error("Parlo: load widget.js with a plain <script src=…> tag");
    return;
  }
  var ORIGIN = new URL(me.src).origin;
  var BASE = ORIGIN + "/widget/v" + VERSION + "/";
  var bot = me.getAttribute("data-bot");
  var lang = me.getAttribute("data-lang");
  if (!bot) {
    console.error("Parlo: the script tag needs data-bot");
    return;
  }
  var de = /^de\b/i.test(lang || document.documentElement.lang || navigator.language || "");
  var CSS =
    "button{all:initial;position:fixed;right:20px;bottom:20px;z-index:2147483000;width:56px;height:56px;" +
    "border:0;border-radius:50%;cursor:pointer;display:flex;align-items:center;" +
    "justify-content:center;background:#2563eb;color:#fff;box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
    "button:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}" +
    "button[aria-busy=true]{cursor:progress;opacity:.75}";
  var ICON =
    '<svg viewBox="0 0 24 24" width="26" height="26" aria-hidden="true"><path fill="currentColor" ' +
    'd="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"/></svg>';

  var host = document.createElement("parlo-widget");
  // Closed: the host page cannot reach into the widget, and its CSS cannot either.
  var root = host.attachShadow({ mode: "closed" });
  try {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } catch (e) {
    var style = document.createElement("style");
    style.textContent = CSS;
    root.appendChild(style);
  }
  var button = document.createElement("button");
  button.type = "button";
  button.innerHTML = ICON;
  button.setAttribute("aria-label", de ? "Chat öffnen" : "Open chat");
  root.appendChild(button);

  // Fetches one bundle file; the browser rejects it unless its SHA-384 matches.
  var bytes = {};
  function verified(file) {
    return (bytes[file] =
      bytes[file] ||
      fetch(BASE + file, { integrity: HASHES[file], credentials: "omit", mode: "cors" })
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status + " for " + file);
          return r.arrayBuffer();
        })
        .catch(function (e) {
          delete bytes[file];
          throw e;
        }));
  }

  // Runs a wasm-bindgen glue script through <script integrity>, the browser's own SRI
  // check (no eval, no blob: URL), and resolves with the namespace it defines.
  var glues = {};
  function glue(file, namespace) {
    return (glues[file] =
      glues[file] ||
      new Promise(function (resolve, reject) {
        if (namespace()) return resolve(namespace());
        var s = document.createElement("script");
        s.src = BASE + file;
        s.integrity = HASHES[file];
        s.crossOrigin = "anonymous";
        s.onload = function () {
          resolve(namespace());
        };
        s.onerror = function () {
          delete glues[file];
          reject(new Error("could not load " + file));
        };
        root.appendChild(s);
      }));
  }

  // Glue and verified WASM bytes in, an initialised module out.
  function load(name, namespace) {
    return Promise.all([glue(name + ".js", namespace), verified(name + "_bg.wasm")]).then(
      function (parts) {
        return parts[0]({ module_or_path: parts[1] }).then(function () {
          return parts[0];
        });
      }
    );
  }

  function widget() {
    return load("parlo_widget", function () {
      return typeof parlo_widget___PARLO_VID__ != "undefined" && parlo_widget___PARLO_VID__;
    });
  }

  // Handed to the widget: it asks for the markdown module (parser and sanitiser) once there
  // is an answer to render or the visitor starts typing, and resolves with its namespace.
  function markdown() {
    return load("parlo_markdown", function () {
      return typeof parlo_markdown___PARLO_VID__ != "undefined" && parlo_markdown___PARLO_VID__;
    });
  }

  // Handed to the widget: it asks for the math module only when an answer has a formula.
  function math() {
    return load("parlo_math", function () {
      return typeof parlo_math___PARLO_VID__ != "undefined" && parlo_math___PARLO_VID__;
    }).then(function (m) {
      return m.render_math;
    });
  }

  var started = false;
  button.onclick = function () {
    if (started) return;
    started = true;
    button.setAttribute("aria-busy", "true");
    widget()
      .then(function (w) {
        w.start(root, ORIGIN, bot, lang, true, math, markdown);
      })
      .catch(function (e) {
        started = false;
        button.removeAttribute("aria-busy");
        button.title = de ? "Chat konnte nicht geladen werden" : "The chat could not be loaded";
        console.error("Parlo:", e);
      });
  };

  function mount() {
    document.body.appendChild(host);
    // Warm the cache while the page is idle; nothing runs until the visitor opens the chat.
    (window.requestIdleCallback || setTimeout)(function () {
      verified("parlo_widget_bg.wasm").catch(function () {});
    }, { timeout: 4000 });
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
