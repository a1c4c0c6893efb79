// Parlo widget loader: the only script a host page includes.
(function () {
"use strict";
var VERSION = "0.2.0";
var HASHES = {"parlo_markdown.js":"sha384-wHbTKYb10dh4Or3CqCjiBbxNX6cMICf72OICn1iEd7Zr0JzWAh5ZElEC6R1MA/lx","parlo_markdown_bg.wasm":"sha384-Oc3BtQbYqy1QtDrpPXaXbramYiGyiV8pXSdPtZhAa0sQNIVi+gBFTr75CikxkRYO","parlo_math.js":"sha384-BynIGEpAEdmBrMuWg8CT1gXTX1yYixBerx3BcLx8KeSI94N69sDZLm2O8lkudX41","parlo_math_bg.wasm":"sha384-UPRYud5YFT3DGyg0ILCgWweo2xP8jPKdxfHZ6EuSZw+2AmnFun/gkakLFExLaMYA","parlo_widget.js":"sha384-IlX9GI+cDIJDHUDsszJqq90pjXvHONHBsFfu+lNI7EVYxZTWLHs/xjXynVNjlmmF","parlo_widget_bg.wasm":"sha384-sI6w2VSfT89M+9u+/S3ChhX6KWHHYbIK7PE96WzgDDpPQxNod8KYFKj+kzAkZnjJ"};
var me = document.currentScript;
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
return typeof parlo_widget_v0_2_0 != "undefined" && parlo_widget_v0_2_0;
});
}
function markdown() {
return load("parlo_markdown", function () {
return typeof parlo_markdown_v0_2_0 != "undefined" && parlo_markdown_v0_2_0;
});
}
function math() {
return load("parlo_math", function () {
return typeof parlo_math_v0_2_0 != "undefined" && parlo_math_v0_2_0;
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
(window.requestIdleCallback || setTimeout)(function () {
verified("parlo_widget_bg.wasm").catch(function () {});
}, { timeout: 4000 });
}
if (document.body) mount();
else document.addEventListener("DOMContentLoaded", mount);
})();
