// Progressive enhancement for Parlo's pages: copy buttons. Every action works without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  if (!navigator.clipboard) return;
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) return;
    var label = button.firstChild.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.value || target.textContent).then(
        function () { button.firstChild.textContent = "Copied"; },
        function () { target.focus(); target.select(); button.firstChild.textContent = "Press Ctrl+C"; }
      );
      setTimeout(function () { button.firstChild.textContent = label; }, 2000);
    });
  });
});
