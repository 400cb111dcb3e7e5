// The bell in the top bar: its menu, and what its live updates need beyond htmx attributes.
// The bell fragment comes from the server (#bell-loader, includes/bell.html), fetched again
// on the events of the person's stream. No inline script anywhere (CSP).
(function () {
  "use strict";

  var slot = document.getElementById("bell-slot");
  if (!slot) return;

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

  // -- the stream ---------------------------------------------------------------------------
  // #bell-stream holds the stream (htmx SSE extension) and #bell-loader refetches the bell
  // on its events (includes/bell.html). Kept here, because attributes cannot say it:
  // - the toast with the new item's text: it is in the event's JSON, not in HTML to swap;
  // - a refetch when a stream comes back after a refused connection: the extension opens
  //   a fresh one (no Last-Event-ID), so what arrived in between is read from the bell;
  // - the stream's state on the element (tests and styles read it; hx-on needs eval).
  var stream = document.getElementById("bell-stream");
  if (!stream) return;
  var lost = false;

  stream.addEventListener("htmx:sseOpen", function () {
    stream.setAttribute("data-stream-state", "open");
    if (lost) refresh();
    lost = false;
  });
  stream.addEventListener("htmx:sseError", function (event) {
    var source = event.detail && event.detail.source;
    stream.setAttribute("data-stream-state", "retrying");
    // The browser resumes by itself with Last-Event-ID unless the stream was refused.
    if (source && source.readyState === EventSource.CLOSED) lost = true;
  });
  stream.addEventListener("htmx:sseMessage", function (event) {
    if (event.detail.type !== "notification") return;
    ringNext = true;
    var data = null;
    try { data = JSON.parse(event.detail.data); } catch (e) { return; }
    if (data && data.text && window.rfToast) window.rfToast(data.text, "info");
  });
})();
