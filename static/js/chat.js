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
    if (field.disabled || !field.value.trim() || !field.form) return;
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

  function foreignSessionIn(html) {
    var pattern = /data-session-id="(\d+)"/g;
    var match;
    while ((match = pattern.exec(html || ""))) {
      if (match[1] !== pageSession) return true;
    }
    return false;
  }

  document.body.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    if (pageSession) {
      var path = detail.requestConfig ? detail.requestConfig.path : "";
      var fromSession = sessionOfPath(path);
      if ((fromSession && fromSession !== pageSession) || foreignSessionIn(detail.serverResponse)) {
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
      // An empty message does nothing: no request at all.
      if (event.target === composer && !box.value.trim()) event.preventDefault();
    });

    // An error about the text goes away once the text changes.
    box.addEventListener("input", function () {
      var errors = document.getElementById("composer-errors");
      if (errors && errors.textContent) errors.textContent = "";
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
      if (thinking) thinking.hidden = false;
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
  // The handoff's stream (escalations:session_events) says when the session changed hands
  // or someone (a person or FlowPilot) wrote in it; the page then asks the server what
  // changed: header and banner, the messages after the last one shown, the lane unless the
  // viewer is typing in it. Nothing typed is ever replaced.
  var liveSource = null;
  var liveTimer = null;

  function liveElement() { return document.getElementById("session-live"); }

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

  function followUp() {
    var live = liveElement();
    if (!live || !window.htmx) return;
    var stickToEnd = nearEnd();
    var lane = document.getElementById("task-lane");
    var laneScroll = lane ? lane.scrollTop : 0;
    var url = live.getAttribute("data-refresh") + "&after=" + encodeURIComponent(lastMessageId()) +
      "&lane=" + (laneBusy() ? "0" : "1");
    window.htmx.ajax("GET", url, { target: "#session-live", swap: "none" }).then(function () {
      dedupeMessages();
      if (stickToEnd) scrollToEnd();
      var freshLane = document.getElementById("task-lane");
      if (freshLane) freshLane.scrollTop = laneScroll;  // the lane stays where the reader was
      if (!liveElement()) stopFollowing();  // resolved: nothing more to follow
    });
  }

  function changed() {
    window.clearTimeout(liveTimer);
    liveTimer = window.setTimeout(followUp, 250);  // a message and its answer: one fetch
  }

  // A message can reach the log twice (the poster's own answer and the live fetch).
  function dedupeMessages() {
    var seen = {};
    Array.prototype.forEach.call(document.querySelectorAll("#chat-log [data-message-id]"), function (item) {
      var id = item.getAttribute("data-message-id");
      if (seen[id]) item.remove();
      seen[id] = true;
    });
  }
  document.body.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail.target && event.detail.target.id === "chat-log") dedupeMessages();
  });

  function stopFollowing() {
    if (liveSource) liveSource.close();
    liveSource = null;
  }

  function follow() {
    var live = liveElement();
    if (!live || typeof window.EventSource !== "function") return;
    stopFollowing();
    liveSource = new EventSource(live.getAttribute("data-stream"));
    ["handoff-resolved", "stream-reset"].forEach(function (name) {
      liveSource.addEventListener(name, changed);
    });
    // Someone's claim, message or step change, or FlowPilot's answer to it. Our own
    // actions updated our own page already (and a refresh would only redraw it).
    function byOthers(event) {
      var data = null;
      try { data = JSON.parse(event.data); } catch (e) { /* refresh anyway */ }
      var live = liveElement();
      var by = data ? (data.claimed_by ? data.claimed_by.id : data.by) : null;
      if (live && by !== null && by !== undefined && String(by) === live.getAttribute("data-user")) return;
      changed();
    }
    liveSource.addEventListener("handoff-claimed", byOthers);
    liveSource.addEventListener("session-activity", byOthers);
    // Released: a new handoff takes over the queue place, with its own stream.
    liveSource.addEventListener("handoff-released", function () {
      changed();
      window.setTimeout(follow, 1000);
    });
  }
  follow();
  window.addEventListener("pagehide", stopFollowing);

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
