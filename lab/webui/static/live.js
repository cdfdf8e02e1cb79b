/* Live updates by server-sent events, for pages served by certlab (no other script runs here:
   the Content-Security-Policy allows scripts from this server only, and none inline).

   Any element with data-live="<SSE url>" subscribes to that url (one EventSource per distinct
   url). Each message's data is JSON, one of:
     {"id": "<element id>", "text": "..."}       sets that element's text (never HTML);
     {"replace": "<element id>", "html": "..."}  replaces that element by the server-rendered HTML
                                                 (the server escapes it: it is a template's output);
     {"done": true}                              the stream is finished: stop listening.
   An element with data-live-status gets a short text saying whether updates are live. */
(function () {
  "use strict";

  function status(text) {
    var marks = document.querySelectorAll("[data-live-status]");
    for (var i = 0; i < marks.length; i++) { marks[i].textContent = text; }
  }

  function apply(event) {
    var data;
    try { data = JSON.parse(event.data); } catch (e) { return false; }
    if (data.done) { return true; }
    if (data.id) {
      var el = document.getElementById(data.id);
      if (el) { el.textContent = data.text == null ? "" : String(data.text); }
    } else if (data.replace) {
      var old = document.getElementById(data.replace);
      if (old && typeof data.html === "string") {
        var tpl = document.createElement("template");
        tpl.innerHTML = data.html.trim();
        var fresh = tpl.content.firstElementChild;
        if (fresh) { old.replaceWith(fresh); }
      }
    }
    return false;
  }

  function subscribe(url) {
    if (!window.EventSource) { status("Live updates are not available in this browser; reload to refresh."); return; }
    var source = new EventSource(url);
    source.onopen = function () { status("Updating live."); };
    source.onmessage = function (event) {
      if (apply(event)) { source.close(); status("Finished; no more updates."); }
    };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) { status("Live updates stopped; reload the page to refresh."); }
      else { status("Reconnecting…"); }
    };
  }

  function start() {
    var seen = {};
    var els = document.querySelectorAll("[data-live]");
    for (var i = 0; i < els.length; i++) {
      var url = els[i].getAttribute("data-live");
      if (url && !seen[url]) { seen[url] = true; subscribe(url); }
    }
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); }
  else { start(); }
}());
