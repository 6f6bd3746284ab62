// sift console: progressive enhancement only. Every page works without this script; it
// adds live updates from the event stream (/console/events, the API's incident events for
// a signed-in browser) and asks before merging or splitting.
"use strict";
(function () {
  var live = document.body.getAttribute("data-live");
  var status = document.getElementById("live-status");
  function say(text) { if (status) status.textContent = text; }

  // Re-reads this page and swaps in the part named `id`, keeping focus and form input
  // elsewhere untouched. Several events in a burst cost one fetch.
  var pending = false;
  function refresh(id) {
    if (pending) return;
    pending = true;
    setTimeout(function () {
      fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById(id), old = document.getElementById(id);
          if (fresh && old) { old.replaceWith(document.importNode(fresh, true)); }
          say("Updated " + new Date().toLocaleTimeString());
        })
        .catch(function () { say("Live update failed; reload to see changes"); })
        .then(function () { pending = false; });
    }, 300);
  }

  if ((live === "incidents" || live === "incident") && window.EventSource) {
    var es = new EventSource("/console/events");
    var here = document.getElementById("incident");
    var mine = here ? here.getAttribute("data-id") : null;
    var kinds = ["incident.opened", "incident.updated", "incident.resolved", "incident.closed"];
    kinds.forEach(function (k) {
      es.addEventListener(k, function (ev) {
        if (live === "incidents") { refresh("incidents"); return; }
        try {
          var d = JSON.parse(ev.data);
          if (d.incident && d.incident.id === mine) { say("This incident changed: reload to see it"); markStale(); }
        } catch (e) { /* not ours */ }
      });
    });
    es.onopen = function () { say("Live"); };
    es.onerror = function () { say("Live updates reconnecting…"); };
  }

  // On the detail page the forms stay as typed: offer a reload instead of replacing them.
  function markStale() {
    var b = document.getElementById("reload-now");
    if (b) return;
    b = document.createElement("button");
    b.id = "reload-now";
    b.type = "button";
    b.textContent = "Reload to see the latest";
    b.addEventListener("click", function () { location.reload(); });
    var h = document.querySelector("main h1");
    if (h) h.after(b);
  }

  // Merging and splitting are easy to undo only by another edit: ask first.
  document.addEventListener("submit", function (e) {
    var f = e.target;
    var action = f.getAttribute("action") || "";
    if (/\/merge$/.test(action)) {
      var into = f.querySelector("[name=into]");
      if (!confirm("Merge this incident into " + (into ? into.value : "?") + "? It will be closed.")) e.preventDefault();
    } else if (/\/split$/.test(action)) {
      var n = f.querySelectorAll("input[name=alert]:checked").length;
      if (n === 0) { alert("Check the alerts to split out first."); e.preventDefault(); }
      else if (!confirm("Split " + n + " alert(s) into a new incident?")) e.preventDefault();
    }
  });
})();
