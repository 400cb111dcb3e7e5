// The live escalation queue: server-sent events from the queue channel keep the page current.
//
// Events are delivered at least once, so every handler is idempotent by handoff id:
// a card is inserted only if absent (or replaced), removed only if present, and lists are
// refetched rather than patched. On "stream-reset" (our Last-Event-ID was too old) the page
// refetches itself. No inline script anywhere (CSP).
(function () {
  "use strict";

  var root = document.getElementById("queue");
  if (!root) return;

  var ZERO_ID = "00000000-0000-0000-0000-000000000000";
  var LEAVE_DELAY_MS = 2500; // a claimed card says who took it before it moves aside
  var me = root.dataset.me;
  var status = document.getElementById("live-status");

  function list() { return document.getElementById("queue-list"); }
  function findCard(id) { return document.getElementById("handoff-" + id); }
  function cardUrl(id) { return root.dataset.cardUrl.replace(ZERO_ID, id); }

  function setStatus(state, label) {
    if (!status) return;
    status.dataset.state = state;
    status.querySelector(".live-label").textContent = label;
  }

  function refreshCount() {
    var cards = list() ? list().querySelectorAll(".handoff-card:not([data-leaving])") : [];
    var count = document.getElementById("waiting-count");
    var empty = document.getElementById("queue-empty");
    if (count) {
      count.textContent = String(cards.length);
      count.setAttribute("aria-label", cards.length + " waiting");
    }
    if (empty) empty.hidden = cards.length > 0;
  }

  // A card's place: high urgency first (rank 0), then oldest first.
  function placeCard(card) {
    var rank = Number(card.dataset.rank);
    var created = Number(card.dataset.created);
    var before = null;
    var cards = list().querySelectorAll(".handoff-card");
    for (var i = 0; i < cards.length; i++) {
      var r = Number(cards[i].dataset.rank);
      var c = Number(cards[i].dataset.created);
      if (r > rank || (r === rank && c > created)) { before = cards[i]; break; }
    }
    list().insertBefore(card, before);
  }

  function fetchFragment(url) {
    return fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) { return response.status === 200 ? response.text() : ""; });
  }

  function toElement(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  function busy(card) {
    // A claim of this card is in flight: htmx swaps the answer in; leave the card alone.
    return card.classList.contains("htmx-request") || card.querySelector(".htmx-request");
  }

  // A handoff is waiting (new, or released back): show its card once.
  function arrive(id) {
    fetchFragment(cardUrl(id)).then(function (html) {
      if (!html) return; // 204: our own escalation; or gone
      var card = toElement(html);
      if (!card || card.dataset.state !== "open") return; // claimed in the meantime
      var existing = findCard(id);
      if (existing) {
        if (busy(existing)) return;
        existing.replaceWith(card);
      } else {
        card.classList.add("is-arriving");
        placeCard(card);
        card.addEventListener("animationend", function () { card.classList.remove("is-arriving"); }, { once: true });
      }
      htmx.process(card);
      refreshCount();
    }).catch(function () { /* the next event or reset catches up */ });
  }

  // A handoff left the queue (claimed or resolved): say so on the card, then move it aside.
  function depart(id) {
    var card = findCard(id);
    if (!card || card.dataset.leaving) return;
    card.dataset.leaving = "1";
    refreshCount();
    if (!busy(card)) {
      fetchFragment(cardUrl(id)).then(function (html) {
        var current = findCard(id);
        var updated = html && toElement(html);
        if (current && updated && !busy(current)) {
          updated.dataset.leaving = "1";
          current.replaceWith(updated);
        }
      }).catch(function () {});
    }
    window.setTimeout(function removeWhenIdle() {
      var current = findCard(id);
      if (!current) return;
      if (busy(current)) { window.setTimeout(removeWhenIdle, 500); return; }
      current.classList.add("is-leaving");
      window.setTimeout(function () {
        var gone = findCard(id);
        if (gone && gone.classList.contains("is-leaving")) gone.remove();
        refreshCount();
      }, 320);
    }, LEAVE_DELAY_MS);
  }

  function refreshRecent() {
    if (!document.getElementById("recent-list")) return;
    htmx.ajax("GET", root.dataset.recentUrl, { target: "#recent-list", swap: "outerHTML" });
  }

  function refreshQueue() {
    htmx.ajax("GET", root.dataset.queueUrl, { target: "#queue-body", swap: "outerHTML" })
      .then(refreshCount);
    refreshRecent();
  }

  function data(event) {
    try { return JSON.parse(event.data) || {}; } catch (e) { return {}; }
  }

  // --- the stream ---------------------------------------------------------------------------
  if (!window.EventSource) {
    setStatus("reconnecting", "Reload for updates");
  } else {
    var url = root.dataset.eventsUrl;
    if (root.dataset.streamFrom) url += "?lastEventId=" + encodeURIComponent(root.dataset.streamFrom);
    var source = new EventSource(url);

    source.addEventListener("open", function () { setStatus("live", "Live"); });
    source.addEventListener("error", function () {
      // EventSource reconnects by itself with Last-Event-ID and replays what was missed.
      setStatus("reconnecting", "Reconnecting…");
    });
    source.addEventListener("handoff-escalated", function (event) {
      var d = data(event);
      if (d.handoff && String(d.escalated_by) !== me) arrive(d.handoff);
    });
    source.addEventListener("handoff-released", function (event) {
      var d = data(event);
      if (d.handoff && String(d.escalated_by) !== me) arrive(d.handoff);
      refreshRecent();
    });
    source.addEventListener("handoff-claimed", function (event) {
      var d = data(event);
      if (d.handoff) depart(d.handoff);
      refreshRecent();
    });
    source.addEventListener("handoff-resolved", function (event) {
      var d = data(event);
      if (d.handoff) depart(d.handoff);
      refreshRecent();
    });
    source.addEventListener("first-action", function (event) {
      document.body.dispatchEvent(new CustomEvent("rf:first-action", { detail: data(event) }));
    });
    source.addEventListener("stream-reset", refreshQueue);
    window.addEventListener("pagehide", function () { source.close(); });
  }

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

  refreshCount();
})();
