// The dashboard preview's widget session. The published widget asks the widget API for a
// session without cookies, and the widget API no longer lets Parlo's own origin in; so on
// this page only, the widget's `POST /session` is answered by the site instead: the same
// request body (the resume secret) goes to the bot's preview session route with this
// page's CSRF token and the sign-in cookie, and the widget gets the usual answer.
"use strict";
(function () {
  var config = document.getElementById("parlo-preview");
  if (!config || !window.fetch) return;
  var widgetSession = config.getAttribute("data-widget-session");
  var previewSession = config.getAttribute("data-preview-session");
  var csrf = config.getAttribute("data-csrf");
  var fetch = window.fetch;
  window.fetch = function (input, init) {
    if (input === widgetSession && init && String(init.method).toUpperCase() === "POST") {
      var sent = {};
      try {
        sent = JSON.parse(init.body) || {};
      } catch (e) {
        sent = {};
      }
      var form = new URLSearchParams();
      form.set("csrf", csrf);
      if (typeof sent.resume === "string") form.set("resume", sent.resume);
      return fetch.call(window, previewSession, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: form.toString()
      });
    }
    return fetch.apply(window, arguments);
  };
})();
