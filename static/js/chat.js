// FlowPilot pages: the composer (Enter sends, optimistic message, "thinking"), the guard
// that keeps one session's responses out of another session's page, and the start form.
(function () {
  "use strict";

  var layout = document.getElementById("fp-layout");
  var pageSession = layout ? layout.getAttribute("data-session-id") : null;
  var scroller = document.getElementById("chat-scroll");
  var log = document.getElementById("chat-log");
  var thinking = document.getElementById("thinking");
  var composer = document.getElementById("composer");
  var box = composer ? composer.querySelector("textarea[name=body]") : null;
  var pendingText = null;

  function toast(text, tags) {
    if (window.rfToast) window.rfToast(text, tags);
  }

  function scrollToEnd() {
    if (scroller) scroller.scrollTop = scroller.scrollHeight;
  }

  // Enter sends, Shift+Enter is a new line: every textarea marked data-enter-submits.
  document.addEventListener("keydown", function (event) {
    var field = event.target;
    if (!(field instanceof HTMLTextAreaElement) || !field.hasAttribute("data-enter-submits")) return;
    if (event.key !== "Enter" || event.shiftKey || event.altKey || event.isComposing) return;
    event.preventDefault();
    if (field.disabled || !field.form) return;
    // An empty box: Enter does nothing; spaces only: the composer says why it is not sent.
    if (!field.value.trim() && !(field.value && field.form.id === "composer")) return;
    field.form.requestSubmit();
  });

  // Escape closes the Escalate popover (what was typed stays in it) and gives focus back.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || event.defaultPrevented) return;
    var popover = document.querySelector("details.fp-escalate[open], details.fp-resolve[open]");
    if (!popover) return;
    popover.open = false;
    var summary = popover.querySelector("summary");
    if (summary) summary.focus();
  });

  // ------------------------------------------------------------ one page, one session
  // Session switches are full page loads, so a request of the previous page dies with it.
  // Belt and braces: any response that belongs to another session is never swapped in.
  function sessionOfPath(path) {
    var match = /\/flowpilot\/sessions\/(\d+)\//.exec(path || "");
    return match ? match[1] : null;
  }

  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    if (pageSession) {
      var path = detail.requestConfig ? detail.requestConfig.path : "";
      var fromSession = sessionOfPath(path);
      if (fromSession && fromSession !== pageSession) {
        detail.shouldSwap = false;
        detail.isError = false;
        return;
      }
    }
    // Form errors come back as 400 (or 422) with the form to show: swap them in.
    var status = detail.xhr.status;
    if (status === 400 || status === 422) {
      detail.shouldSwap = true;
      detail.isError = false;
    }
  });

  document.body.addEventListener("htmx:oobBeforeSwap", function (event) {
    if (!pageSession) return;
    var fragment = event.detail.fragment;
    var element = fragment && fragment.firstElementChild;
    var owner = element ? element.getAttribute("data-session-id") : null;
    if (owner && owner !== pageSession) event.detail.shouldSwap = false;
  });

  // 400s are swapped above, 403s carry their own toast (HX-Trigger), 5xx are app.js's.
  document.body.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status === 404) {
      toast("That session or step no longer exists, or it is not yours.", "error");
    } else if (xhr.status === 403 && !xhr.getResponseHeader("HX-Trigger")) {
      toast("You cannot change this session. Reload the page to see its current state.", "error");
    }
  });

  // ---------------------------------------------------------------------- composer
  if (composer && box && log) {
    composer.addEventListener("htmx:confirm", function (event) {
      // An empty message is not sent; the box says why (the server's words for it).
      if (event.target !== composer || box.value.trim()) return;
      event.preventDefault();
      var errors = document.getElementById("composer-errors");
      if (errors) {
        var line = document.createElement("p");
        line.className = "field-error";
        line.textContent = "Type a message first.";
        errors.replaceChildren(line);
      }
      box.focus();
    });

    // The draft survives a reload of the page (this tab only), until it is sent.
    var draftKey = "rf-draft-" + (composer.getAttribute("data-session-id") || "");
    function keepDraft() {
      try {
        if (box.value.trim()) window.sessionStorage.setItem(draftKey, box.value);
        else window.sessionStorage.removeItem(draftKey);
      } catch (error) { /* storage off or full: the draft just is not kept */ }
    }
    try {
      var kept = window.sessionStorage.getItem(draftKey);
      if (kept && !box.value) box.value = kept;
    } catch (error) { /* storage off */ }

    // An error about the text goes away once the text changes.
    box.addEventListener("input", function () {
      var errors = document.getElementById("composer-errors");
      if (errors && errors.textContent) errors.textContent = "";
      keepDraft();
    });

    composer.addEventListener("htmx:beforeRequest", function (event) {
      if (event.target !== composer) return;
      // The form values are already collected: show the message at once and clear the box.
      pendingText = box.value;
      var errors = document.getElementById("composer-errors");
      if (errors) errors.textContent = "";
      var bubble = document.createElement("article");
      bubble.className = "msg msg-user msg-pending";
      bubble.id = "pending-message";
      var body = document.createElement("div");
      body.className = "msg-body msg-text";
      body.textContent = pendingText;
      bubble.appendChild(body);
      log.appendChild(bubble);
      box.value = "";
      keepDraft(); // on its way: a reload now must not bring it back to send twice
      // FlowPilot thinks only when asked: a senior's note to the technician has no answer.
      var form = event.detail.requestConfig && event.detail.requestConfig.formData;
      var toPeople = composer.querySelector(".composer-ask") && !(form && form.get && form.get("ask") === "flowpilot");
      if (thinking && !toPeople) thinking.hidden = false;
      composer.classList.add("is-sending");
      scrollToEnd();
    });

    composer.addEventListener("htmx:beforeSwap", function (event) {
      if (event.target !== composer || !event.detail.shouldSwap) return;
      var pending = document.getElementById("pending-message");
      if (pending) pending.remove(); // the stored message replaces it
    });

    composer.addEventListener("htmx:afterRequest", function (event) {
      if (event.target !== composer) return;
      var status = event.detail.xhr ? event.detail.xhr.status : 0;
      var pending = document.getElementById("pending-message");
      if (pending) pending.remove();
      if (thinking) thinking.hidden = true;
      composer.classList.remove("is-sending");
      var sent = status >= 200 && status < 300 && status !== 204;
      if (!sent && !box.value && pendingText !== null) {
        box.value = pendingText; // nothing is lost when sending fails
      }
      pendingText = null;
      keepDraft(); // refused: kept again
      window.setTimeout(function () {
        box.focus();
        scrollToEnd();
      }, 0);
    });
  }

  // Steps FlowPilot (or the technician) just added slide in and scroll into view once.
  document.body.addEventListener("htmx:afterSettle", function () {
    var added = document.querySelector("#task-lane .task-new:not([data-shown])");
    if (!added) return;
    added.setAttribute("data-shown", "");
    added.scrollIntoView({ block: "nearest", behavior: "smooth" });
  });

  scrollToEnd();

  // ------------------------------------------------------- following an escalated session
  // #session-live (session.html) holds the handoff's stream with the htmx SSE extension and
  // refetches what changed on its events. What attributes cannot say stays here:
  // - which messages the page shows and whether the lane is being typed in (the request's
  //   `after` and `lane`): page state, which hx-vals could only read through eval (CSP);
  // - skipping our own claim or activity (our page is current already): a filter on the
  //   event's data, which an hx-trigger filter could only express through eval;
  // - asking for a new stream after a release (the session's new handoff has its own);
  // - keeping the reader's place: scroll, the lane's scroll, no message twice.
  function lastMessageId() {
    var shown = document.querySelectorAll("#chat-log [data-message-id]");
    return shown.length ? shown[shown.length - 1].getAttribute("data-message-id") : "0";
  }

  function laneBusy() {
    var lane = document.getElementById("task-lane");
    if (!lane) return false;
    if (lane.contains(document.activeElement) && document.activeElement.matches("input, textarea, select")) return true;
    return Array.prototype.some.call(lane.querySelectorAll("input[type=text], textarea"), function (field) {
      return field.value !== field.defaultValue;
    });
  }

  function nearEnd() {
    return !scroller || scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
  }

  function fromLive(event) {
    return event.detail && event.detail.elt && event.detail.elt.id === "session-live";
  }

  function streamEvent(event) {
    var triggering = event.detail.triggeringEvent;
    return triggering && triggering.detail && triggering.detail.type ? triggering.detail : null;
  }

  document.body.addEventListener("htmx:confirm", function (event) {
    if (!fromLive(event)) return;
    var message = streamEvent(event);
    if (!message || (message.type !== "handoff-claimed" && message.type !== "session-activity")) return;
    var data = null;
    try { data = JSON.parse(message.data); } catch (e) { return; /* refresh anyway */ }
    var by = data ? (data.claimed_by ? data.claimed_by.id : data.by) : null;
    if (by !== null && by !== undefined && String(by) === event.detail.elt.getAttribute("data-user")) {
      event.preventDefault();  // our own: nothing to fetch
    }
  });

  var live = { stickToEnd: false, laneScroll: 0 };
  document.body.addEventListener("htmx:configRequest", function (event) {
    if (!fromLive(event)) return;
    var message = streamEvent(event);
    event.detail.parameters.after = lastMessageId();
    event.detail.parameters.lane = laneBusy() ? "0" : "1";
    if (message && message.type === "handoff-released") event.detail.parameters.restream = "1";
    var lane = document.getElementById("task-lane");
    live.stickToEnd = nearEnd();
    live.laneScroll = lane ? lane.scrollTop : 0;
  });

  // A message can reach the log twice (the poster's own answer and the live fetch).
  function dedupeMessages() {
    var seen = {};
    Array.prototype.forEach.call(document.querySelectorAll("#chat-log [data-message-id]"), function (item) {
      var id = item.getAttribute("data-message-id");
      if (seen[id]) item.remove();
      seen[id] = true;
    });
  }

  // A claim or a release changes whom the composer writes to: the live fetch brings the
  // new buttons (#composer-buttons); the box keeps its text and takes their wording.
  function syncComposer() {
    var buttons = document.getElementById("composer-buttons");
    var box = document.getElementById("composer-body");
    var label = document.getElementById("composer-label");
    if (!buttons || !box) return;
    if (buttons.dataset.placeholder) box.placeholder = buttons.dataset.placeholder;
    if (label && buttons.dataset.label) label.textContent = buttons.dataset.label;
    if (buttons.dataset.closed) {
      // Resolved while open: nothing can be sent, and Enter must not try.
      box.readOnly = true;
      box.removeAttribute("data-enter-submits");
    }
  }

  // The sidebar lists this session too: its status pill follows the header's.
  function syncSidebar() {
    var fresh = document.querySelector("#fp-chat-top .fp-facts .pill");
    var holder = document.querySelector("[data-session-id]");
    if (!fresh || !holder) return;
    var id = holder.getAttribute("data-session-id");
    var old = document.querySelector(
      '.fp-session-nav:not(.fp-claims-nav) [data-session-link="' + id + '"] .fp-session-meta .pill'
    );
    if (old) old.replaceWith(fresh.cloneNode(true));
  }

  document.body.addEventListener("htmx:afterRequest", function (event) {
    if (!fromLive(event) || !event.detail.successful) return;
    syncComposer();
    syncSidebar();
    dedupeMessages();
    if (live.stickToEnd) scrollToEnd();
    var freshLane = document.getElementById("task-lane");
    if (freshLane) freshLane.scrollTop = live.laneScroll;  // the lane stays where the reader was
  });
  document.body.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail.target && event.detail.target.id === "chat-log") dedupeMessages();
  });
  // A live update that ends the stream (a resolve) swaps #session-live itself: its request
  // events then fire on a detached element and never reach the body. The swapped parts
  // say what changed.
  document.body.addEventListener("htmx:oobAfterSwap", function (event) {
    var id = event.target && event.target.id;
    if (id === "composer-buttons") syncComposer();
    if (id === "fp-chat-top") syncSidebar();
  });

  // --------------------------------------------------------------- the start form
  var startForm = document.querySelector("form[data-busy-label]");
  if (startForm) {
    var startButton = startForm.querySelector("button[type=submit]");
    var idleLabel = startButton ? startButton.textContent : "";
    startForm.addEventListener("submit", function (event) {
      var problem = startForm.querySelector("[name=problem]");
      if (problem && !problem.value.trim()) {
        event.preventDefault();
        problem.focus();
        toast("Describe the problem first.", "error");
        return;
      }
      if (startButton) {
        // One session per click; FlowPilot's first answer may take a few seconds.
        startButton.disabled = true;
        startButton.textContent = startForm.getAttribute("data-busy-label");
      }
    });
    // Back to this page from the browser's cache: the button works again.
    window.addEventListener("pageshow", function () {
      if (startButton) {
        startButton.disabled = false;
        startButton.textContent = idleLabel;
      }
    });
  }
})();
