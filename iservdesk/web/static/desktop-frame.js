// The owner's desktop tab (web/desktop.py's frame page): the desktop's client in a frame,
// and above it a bar that says who sees this screen now (a teacher watching, a class page
// showing its thumbnail), kept up to date by /api/events and /api/watching like the
// dashboard, and, from IDLE_WARNING before an idle stop, a warning with one click to keep
// the desktop. When the desktop stops, the tab is loaded again and shows the portal's
// status page with its start button.
"use strict";
(function () {
  var body = document.body;
  var name = body.dataset.desktop;
  var lang = document.documentElement.lang || "de";
  var texts = JSON.parse(document.getElementById("desktop-texts").textContent);
  var bar = document.getElementById("desktop-notices");
  var frame = document.getElementById("desktop-frame");
  var clock = new Intl.DateTimeFormat(lang, {hour: "numeric", minute: "2-digit"});

  function t(key, values) {
    var text = texts[key] || key;
    Object.keys(values).forEach(function (field) { text = text.split("{" + field + "}").join(values[field]); });
    return text;
  }

  function show(watches) {
    bar.replaceChildren();
    watches.forEach(function (watch) {
      var line = document.createElement("p");
      line.className = "watcher";
      var eye = document.createElement("img");
      eye.className = "eye";
      eye.src = "/static/icons/eye.svg";
      eye.alt = "";
      line.append(eye, t(watch.kind === "thumbnail" ? "watching.thumbnail" : "watching.now",
                         {watcher: watch.watcher, time: clock.format(new Date(watch.since))}));
      bar.appendChild(line);
    });
    if (watches.length) {
      var hint = document.createElement("p");
      hint.textContent = texts["watching.view_only"];
      bar.appendChild(hint);
    }
    bar.hidden = !watches.length;
  }

  function loadWatching() {
    if (body.dataset.classroom !== "true") { return; }
    fetch("/api/watching", {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (watching) {
        if (watching) { show(watching.now.filter(function (watch) { return watch.desktop === name; })); }
      })
      .catch(function () { /* the next event or round */ });
  }

  // The idle warning: the server says in how many seconds; this page's clock counts.
  var idle = document.getElementById("idle-warning");
  var warnAt = null, stopAt = null;

  function follow(desktop) {
    var now = Date.now();
    warnAt = desktop.idle_warning_in === null || desktop.idle_warning_in === undefined
      ? null : now + desktop.idle_warning_in * 1000;
    stopAt = desktop.idle_stop_in === null || desktop.idle_stop_in === undefined ? null : now + desktop.idle_stop_in * 1000;
    showIdle();
  }

  function showIdle() {
    var due = warnAt !== null && Date.now() >= warnAt;
    if (due) {
      var minutes = Math.ceil((stopAt - Date.now()) / 60000);
      idle.firstChild.textContent = minutes > 1 ? t("idle.warning", {minutes: minutes}) : texts["idle.warning_soon"];
    }
    idle.hidden = !due;
  }

  function call(method, path) {
    return fetch(path, {method: method, credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); });
  }

  document.getElementById("keep").addEventListener("click", function () {
    // The CSRF token comes from /session (this page carries none: the desktop's client is
    // framed in it).
    call("GET", "/session").then(function (session) {
      return fetch("/api/container/keep?desktop_type=" + encodeURIComponent(body.dataset.desktopType), {
        method: "POST", credentials: "same-origin",
        headers: {"Accept": "application/json", "X-CSRF-Token": session.csrf_token}});
    }).then(function (response) { return response.json(); }).then(follow)
      .then(function () { frame.focus(); })
      .catch(function () { /* the next event says how things stand */ });
  });

  function loadDesktop() {
    call("GET", "/api/container/status?desktop_type=" + encodeURIComponent(body.dataset.desktopType))
      .then(follow).catch(function () { /* the next round */ });
  }

  var source = new EventSource("/api/events");
  source.addEventListener("watch", loadWatching);
  source.addEventListener("open", function () { loadWatching(); loadDesktop(); });  // after a reconnect too
  source.addEventListener("desktop", function (event) {
    var desktop = JSON.parse(event.data);
    if (desktop.name !== name) { return; }
    if (desktop.status !== "running") { window.location.reload(); }
    follow(desktop);
  });
  window.setInterval(loadWatching, 30000);
  window.setInterval(showIdle, 5000);
  frame.addEventListener("load", function () { frame.focus(); });  // keys go to the desktop
})();
