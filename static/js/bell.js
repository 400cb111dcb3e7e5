// The bell in the top bar: its menu, and live updates from the user's event stream.
// The bell fragment comes from the server (hx-get on #bell-slot); on every `notification`
// event this file asks htmx to fetch it again. No inline script anywhere (CSP).
(function () {
  "use strict";

  var slot = document.getElementById("bell-slot");
  if (!slot) return;

  var streamUrl = slot.getAttribute("data-stream");
  var source = null;
  var retryDelay = 1000;
  var retryTimer = null;
  var reconnecting = false;
  var keepOpen = false;
  var ringNext = false;

  function refresh() {
    document.body.dispatchEvent(new CustomEvent("rf-bell-refresh"));
  }

  function menu() { return document.getElementById("bell-menu"); }
  function button() { return document.getElementById("bell-button"); }
  function isOpen() { var m = menu(); return !!m && !m.hidden; }

  function setOpen(open) {
    var m = menu();
    var b = button();
    if (!m || !b) return;
    m.hidden = !open;
    b.setAttribute("aria-expanded", open ? "true" : "false");
  }

  // -- the menu ---------------------------------------------------------------------------

  document.addEventListener("click", function (event) {
    if (event.target.closest("#bell-button")) {
      setOpen(!isOpen());
      return;
    }
    if (isOpen() && !event.target.closest("#bell-menu")) setOpen(false);
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && isOpen()) {
      setOpen(false);
      var b = button();
      if (b) b.focus();
    }
  });

  // A refresh replaces the menu: keep it open if it was, ring if something arrived.
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target !== slot) return;
    // Signed out meanwhile: the answer is the sign-in page, which has no place in the bell.
    var answeredBy = event.detail.xhr.responseURL || "";
    if (answeredBy.indexOf("/notifications/") === -1) {
      event.detail.shouldSwap = false;
      return;
    }
    keepOpen = isOpen();
  });
  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target !== slot) return;
    if (keepOpen) setOpen(true);
    var b = button();
    if (ringNext && b) {
      b.classList.add("bell-ring");
      window.setTimeout(function () { b.classList.remove("bell-ring"); }, 1200);
    }
    ringNext = false;
  });

  // -- the stream -------------------------------------------------------------------------

  if (!streamUrl || typeof window.EventSource !== "function") return;

  function parse(text) {
    try { return JSON.parse(text); } catch (e) { return null; }
  }

  function scheduleReconnect() {
    if (source) source.close();
    slot.setAttribute("data-stream-state", "closed");
    window.clearTimeout(retryTimer);
    retryTimer = window.setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000);
    reconnecting = true;
  }

  function connect() {
    source = new EventSource(streamUrl);
    source.addEventListener("stream-open", function () {
      slot.setAttribute("data-stream-state", "open");
      retryDelay = 1000;
      // A fresh connection starts from now: fetch whatever arrived while we were away.
      if (reconnecting) refresh();
      reconnecting = false;
    });
    source.addEventListener("notification", function (event) {
      ringNext = true;
      refresh();
      var data = parse(event.data);
      if (data && data.text && window.rfToast) window.rfToast(data.text, "info");
    });
    // Somebody picked up a handoff (a senior's bell also hears the queue): its "pick this
    // up" items were answered, so recount, quietly.
    source.addEventListener("handoff-claimed", refresh);
    // Our last id is older than what the server keeps: re-read the bell as a whole.
    source.addEventListener("stream-reset", refresh);
    // The server refused the stream (signed out, permission changed): back off, retry fresh.
    source.addEventListener("stream-error", scheduleReconnect);
    source.onerror = function () {
      // The browser retries by itself (with Last-Event-ID) unless the response was an
      // error status; then it gives up and we start a fresh stream later.
      slot.setAttribute("data-stream-state", "retrying");
      reconnecting = true;
      if (source.readyState === EventSource.CLOSED) scheduleReconnect();
    };
  }

  window.addEventListener("pagehide", function () { if (source) source.close(); });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { reconnecting = true; connect(); }
  });
  connect();
})();
