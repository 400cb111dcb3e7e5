// Taking over a handoff, on the chat page: the post-claim overlay, the composer focus and
// "Open in Tasks panel". The panel (overlay + chips) arrives by htmx after the page loads.
//   ?takeover=1  ("I'll take it from here"): no overlay, the composer has focus.
//   ?analysis=1  ("Get AI analysis"): the overlay opens over the briefed chat; Close
//                 (or Escape) closes it and puts the focus in the composer.
(function () {
  "use strict";

  var params = new URLSearchParams(window.location.search);
  var arrival = params.has("analysis") ? "analysis" : params.has("takeover") ? "takeover" : "";
  if (arrival) {
    // One-shot flags: a reload must not reopen the overlay.
    params.delete("analysis");
    params.delete("takeover");
    var query = params.toString();
    window.history.replaceState(
      window.history.state, "", window.location.pathname + (query ? "?" + query : "") + window.location.hash
    );
  }

  function focusComposer() {
    var box = document.getElementById("composer-body");
    if (box && !box.disabled) {
      box.focus();
      box.setSelectionRange(box.value.length, box.value.length);
    }
  }

  if (arrival === "takeover") focusComposer();

  function setUp(root) {
    var dialog = root.id === "handoff-overlay" ? root : root.querySelector && root.querySelector("#handoff-overlay");
    if (!dialog || dialog.hasAttribute("data-ready")) return;
    dialog.setAttribute("data-ready", "");
    // The panel took room from the chat above it: keep the newest messages in view.
    var scroller = document.getElementById("chat-scroll");
    if (scroller) scroller.scrollTop = scroller.scrollHeight;
    dialog.addEventListener("close", focusComposer);
    // A click on the backdrop (outside the dialog's box) closes it too.
    dialog.addEventListener("click", function (event) {
      if (event.target !== dialog) return;
      var box = dialog.getBoundingClientRect();
      var inside = event.clientX >= box.left && event.clientX <= box.right &&
        event.clientY >= box.top && event.clientY <= box.bottom;
      if (!inside) dialog.close();
    });
    if (arrival === "analysis") {
      var note = dialog.querySelector("[data-analysis-note]");
      if (note) note.hidden = false;
      dialog.showModal();
      var close = dialog.querySelector(".takeover-close");
      if (close) close.focus();
    } else if (arrival === "takeover") {
      focusComposer();
    }
    arrival = "";
  }

  if (window.htmx) window.htmx.onLoad(setUp);

  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-open-handoff]");
    if (!opener) return;
    var dialog = document.getElementById("handoff-overlay");
    if (dialog && !dialog.open) dialog.showModal();
  });

  // After "Open in Tasks panel" the lane is swapped in: show the step there.
  function showTask(id) {
    var task = document.getElementById("task-" + id);
    if (!task) return false;
    task.scrollIntoView({ block: "nearest", behavior: "smooth" });
    task.classList.remove("task-flash");
    void task.offsetWidth; // restart the animation
    task.classList.add("task-flash");
    var chip = document.querySelector("#handoff-panel details.chip[open]");
    if (chip) chip.open = false;
    return true;
  }

  document.body.addEventListener("rf:task-opened", function (event) {
    showTask(event.detail.task);
  });

  // "Where it stands" heads the panel and follows the assessment. The chat page's stream
  // (#session-live, the handoff's events) is owned by flowpilot's template, which knows no
  // assessment: listen on its EventSource (a new one after each reconnect) and tell the
  // box (hx-trigger="rf:assessment from:body") to refetch itself.
  document.body.addEventListener("htmx:sseOpen", function (event) {
    var source = event.detail && event.detail.source;
    if (!source || source.rfStands) return;
    source.rfStands = true;
    ["assessment", "stream-reset"].forEach(function (name) {
      source.addEventListener(name, function () {
        if (document.getElementById("where-it-stands")) window.htmx.trigger(document.body, "rf:assessment");
      });
    });
  });

  // A chip whose step the lane already holds: point at that task instead of adding it.
  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-show-task]");
    if (link && showTask(link.getAttribute("data-show-task"))) event.preventDefault();
  });
})();
