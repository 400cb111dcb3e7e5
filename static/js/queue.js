// The escalation queue page. The live part is declarative (queue.html: the htmx SSE
// extension refetches the waiting section and the recent claims on the queue's events);
// this file keeps only what htmx attributes cannot say:
// - the "Live / Reconnecting…" badge: the extension reports the stream's state only as
//   htmx:sseOpen / htmx:sseError events, and hx-on (which could set it) needs eval, which
//   our CSP and htmx config forbid;
// - previews that expand and collapse on the same button (a toggle, not a request);
// - waiting times that tick between refreshes.
// No inline script anywhere (CSP).
(function () {
  "use strict";

  var root = document.getElementById("queue");
  if (!root) return;
  var status = document.getElementById("live-status");

  function setStatus(state, label) {
    if (!status) return;
    status.dataset.state = state;
    status.querySelector(".live-label").textContent = label;
  }

  // A stream also ends on purpose: behind Pushpin it reconnects every minute to re-check the
  // sign-in, back within a second. Only a reconnection that takes longer is worth showing.
  var reconnecting = null;
  root.addEventListener("htmx:sseOpen", function () {
    window.clearTimeout(reconnecting);
    reconnecting = null;
    setStatus("live", "Live");
  });
  root.addEventListener("htmx:sseError", function () {
    // The browser (or the extension, after a refused connection) reconnects by itself.
    if (reconnecting !== null) return;
    reconnecting = window.setTimeout(function () {
      setStatus("reconnecting", "Reconnecting…");
    }, 2000);
  });
  if (!window.EventSource) setStatus("reconnecting", "Reload for updates");

  // --- previews: expand inline, collapse on the second click ---------------------------------
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest(".preview-toggle");
    if (!toggle) return;
    var panel = document.getElementById(toggle.getAttribute("aria-controls"));
    if (!panel) return;
    if (toggle.getAttribute("aria-expanded") === "true") {
      toggle.setAttribute("aria-expanded", "false");
      toggle.textContent = "Preview";
      panel.hidden = true;
      return;
    }
    toggle.setAttribute("aria-expanded", "true");
    toggle.textContent = "Hide";
    panel.hidden = false;
    if (panel.dataset.loaded) return;
    htmx.ajax("GET", toggle.dataset.previewUrl, { target: panel, swap: "innerHTML" }).then(function () {
      panel.dataset.loaded = "1";
      var card = toggle.closest(".handoff-card");
      if (card) {
        card.classList.remove("is-unread");
        var dot = card.querySelector(".dot-unread");
        if (dot) dot.remove();
      }
    });
  });

  // A live refresh re-renders the cards: a preview that was open stays open.
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "queue-body") return;
    var open = [];
    document.querySelectorAll('#queue-list .preview-toggle[aria-expanded="true"]').forEach(function (toggle) {
      open.push(toggle.getAttribute("aria-controls"));
    });
    root.dataset.openPreviews = open.join(" ");
  });
  document.body.addEventListener("htmx:afterSettle", function (event) {
    if (!event.detail.target || event.detail.target.id !== "queue-body") return;
    (root.dataset.openPreviews || "").split(" ").forEach(function (id) {
      if (!id) return;
      var toggle = document.querySelector('.preview-toggle[aria-controls="' + id + '"]');
      if (toggle) toggle.click();
    });
    root.dataset.openPreviews = "";
  });

  // A live refresh of "My handoffs" keeps "Show all" open if it was (a toggle, not a request).
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "my-handoffs") return;
    var more = document.getElementById("mine-more");
    root.dataset.mineOpen = more && more.open ? "1" : "";
  });
  document.body.addEventListener("htmx:afterSettle", function () {
    if (root.dataset.mineOpen !== "1") return;
    root.dataset.mineOpen = "";
    var more = document.getElementById("mine-more");
    if (more) more.open = true;
  });

  // --- presence: "Sky is viewing" on a card ---------------------------------------------------
  // One hidden element hears the queue stream's handoff-presence events (queue.html); the
  // card named in the event's data refetches its line (an hx-trigger filter would need eval).
  var presenceLive = document.getElementById("presence-live");
  if (presenceLive) {
    presenceLive.addEventListener("htmx:sseMessage", function (event) {
      var data = null;
      try { data = JSON.parse(event.detail.data); } catch (e) { return; }
      var line = data && data.handoff && document.getElementById("presence-" + data.handoff);
      if (!line) return;  // not in view: a refresh or "Show more" renders it as it is
      htmx.ajax("GET", line.getAttribute("data-presence-url"), { target: line, swap: "outerHTML" });
    });
  }

  // --- waiting times tick ---------------------------------------------------------------------
  function since(seconds) {
    var minutes = Math.floor(seconds / 60);
    if (minutes < 1) return "under a minute";
    if (minutes < 60) return minutes + "\u00a0minute" + (minutes === 1 ? "" : "s");
    var hours = Math.floor(minutes / 60);
    var rest = minutes % 60;
    if (hours < 24) {
      return hours + "\u00a0hour" + (hours === 1 ? "" : "s") +
        (rest ? ", " + rest + "\u00a0minute" + (rest === 1 ? "" : "s") : "");
    }
    var days = Math.floor(hours / 24);
    return days + "\u00a0day" + (days === 1 ? "" : "s");
  }
  window.setInterval(function () {
    var now = Date.now() / 1000;
    document.querySelectorAll("#queue-list time[data-since]").forEach(function (el) {
      el.textContent = since(now - Number(el.dataset.since));
    });
  }, 30000);
})();
