// The owner's desktop tab (web/desktop.py's frame page): the desktop's client in a frame,
// and above it a bar that says who sees this screen now (a teacher watching, a class page
// showing its thumbnail), kept up to date by /api/events and /api/watching like the
// dashboard. When the desktop stops, the tab is loaded again and shows the portal's
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

  var source = new EventSource("/api/events");
  source.addEventListener("watch", loadWatching);
  source.addEventListener("open", loadWatching);  // also after a reconnect: what was missed
  source.addEventListener("desktop", function (event) {
    var desktop = JSON.parse(event.data);
    if (desktop.name === name && desktop.status !== "running") { window.location.reload(); }
  });
  window.setInterval(loadWatching, 30000);
  frame.addEventListener("load", function () { frame.focus(); });  // keys go to the desktop
})();
