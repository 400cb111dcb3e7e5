// Shared behaviour for every page: toasts, copy buttons, and htmx error feedback.
// No inline script anywhere (CSP); page-specific files add their own listeners.
(function () {
  "use strict";

  // A form that undoes someone's work asks first (data-confirm holds the question).
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  function showToast(text, tags) {
    var region = document.getElementById("toasts");
    if (!region) return;
    var toast = document.createElement("div");
    toast.className = "toast toast-" + (tags || "info");
    toast.textContent = text;
    region.appendChild(toast);
    // Only the newest shows (app.css): the older ones are read already or in the bell.
    while (region.children.length > 3) region.removeChild(region.firstElementChild);
    leaveLater(toast, 6000);
  }
  function leaveLater(toast, after) {
    window.setTimeout(function () {
      toast.classList.add("toast-leaving");
      window.setTimeout(function () { toast.remove(); }, 300);
    }, after);
  }
  // A click puts a toast away at once (it covers nothing, so it never has to be).
  document.addEventListener("click", function (event) {
    var toast = event.target.closest && event.target.closest(".toast");
    if (toast) toast.remove();
  });
  window.rfToast = showToast;

  // Messages from the server ride in HX-Trigger as {"messages": [{message, tags}]}.
  document.body.addEventListener("messages", function (event) {
    (event.detail.value || []).forEach(function (m) { showToast(m.message, m.tags); });
  });

  // Toasts rendered with a full page fade out like the others.
  document.querySelectorAll("#toasts .toast").forEach(function (toast) { leaveLater(toast, 6000); });

  // Copy buttons: <button data-copy="text"> or data-copy-target="#id".
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy], [data-copy-target]");
    if (!button) return;
    var text = button.getAttribute("data-copy");
    if (text === null) {
      var target = document.querySelector(button.getAttribute("data-copy-target"));
      text = target ? target.textContent : "";
    }
    var done = function () {
      // One message: the button itself says "Copied" (and screen readers hear it), no toast.
      button.classList.add("copied");
      button.setAttribute("aria-label", "Copied");
      announce("Copied");
      window.setTimeout(function () {
        button.classList.remove("copied");
        button.setAttribute("aria-label", "Copy command");
      }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else {
      fallbackCopy(text);
      done();
    }
  });

  function announce(text) {
    var status = document.getElementById("rf-status");
    if (!status) {
      status = document.createElement("div");
      status.id = "rf-status";
      status.className = "visually-hidden";
      status.setAttribute("role", "status");
      document.body.appendChild(status);
    }
    status.textContent = "";
    window.setTimeout(function () { status.textContent = text; }, 50);
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* nothing more to try */ }
    area.remove();
  }

  // --- presence (escalations/presence.py): "Sky is viewing" --------------------------------
  // A handoff screen beats every 10 s ([data-presence-beat], templates/escalations/
  // _presence.html). Kept here, because attributes cannot say it: the id of this page view
  // on every beat (a swapped header keeps it; a second tab has its own), and the beacon
  // when the page goes away, so that the others stop seeing us at once.
  var presenceTab = (function () {
    var bytes = new Uint8Array(8);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  })();
  document.body.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.elt.hasAttribute("data-presence-beat")) event.detail.parameters.tab = presenceTab;
  });
  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["x-csrftoken"] || ""; } catch (e) { return ""; }
  }
  window.addEventListener("pagehide", function () {
    document.querySelectorAll("[data-presence-beat]").forEach(function (beat) {
      var body = new URLSearchParams({ tab: presenceTab, csrfmiddlewaretoken: csrfToken() });
      if (navigator.sendBeacon) navigator.sendBeacon(beat.getAttribute("data-presence-leave"), body);
    });
  });
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted || !window.htmx) return;  // back from the back/forward cache: beat now
    document.querySelectorAll("[data-presence-beat]").forEach(function (beat) { htmx.trigger(beat, "rf-presence-beat"); });
  });

  // A failed htmx request (network down, 5xx) says so instead of silently doing nothing.
  document.body.addEventListener("htmx:sendError", function () {
    showToast("Could not reach the server. Nothing was lost; try again.", "error");
  });
  document.body.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    if (status >= 500) showToast("Something went wrong on our side. Try again.", "error");
  });
})();
