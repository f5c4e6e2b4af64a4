// The "your desktop is starting" page: follows the desktop's status and continues to the
// desktop by itself once it runs; the Start button starts a stopped desktop.
"use strict";
(function () {
  var main = document.getElementById("desktop-status");
  var slug = main.dataset.desktopType;
  var texts = {
    pulling: ["Dein Desktop wird vorbereitet …", "Your desktop is being prepared …"],
    starting: ["Dein Desktop startet …", "Your desktop is starting …"],
    new: ["Dein Desktop startet …", "Your desktop is starting …"],
    queued: ["Dein Desktop wartet auf einen Startplatz …", "Your desktop is waiting for its turn to start …"],
    running: ["Dein Desktop ist bereit.", "Your desktop is ready."],
    stopped: ["Dieser Desktop ist gestoppt.", "This desktop is stopped."],
    removed: ["Dieser Desktop ist entfernt. Deine Dateien sind noch da.",
              "This desktop was removed. Your files are still there."],
    error: ["Dieser Desktop konnte nicht starten.", "This desktop could not start."],
    lost: ["Der Server dieses Desktops antwortet gerade nicht. Deine Dateien sind dort; der Desktop ist wieder da, sobald der Server es ist.",
           "The server of this desktop does not answer right now. Your files are there; the desktop is back as soon as the server is."]
  };
  var busy = ["queued", "pulling", "starting", "new"];

  function show(body) {
    var text = texts[body.status] || texts.error;
    document.getElementById("status-de").textContent = text[0];
    document.getElementById("status-en").textContent = text[1];
    document.getElementById("message").textContent = body.status === "queued" && body.queue_position
      ? "Platz " + body.queue_position + " / number " + body.queue_position + " in line" : body.message || "";
    var progress = document.getElementById("progress");
    if (body.progress === null || body.progress === undefined) {
      progress.removeAttribute("value");
    } else {
      progress.value = body.progress;
    }
    document.getElementById("start").hidden = busy.indexOf(body.status) >= 0;
    progress.hidden = busy.indexOf(body.status) < 0;
    main.dataset.status = body.status;
  }

  function poll() {
    fetch("/api/container/status?desktop_type=" + encodeURIComponent(slug), {credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (body) {
        show(body);
        if (body.status === "running") {
          window.location.replace(main.dataset.url);
        } else if (busy.indexOf(body.status) >= 0) {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }

  // The CSRF token is fetched when needed, never put into a page under /desktop/: a
  // desktop's own documents live on that path too.
  document.getElementById("start").addEventListener("click", function () {
    fetch("/session", {credentials: "same-origin"})
      .then(function (response) { return response.json(); })
      .then(function (session) {
        return fetch("/api/container/start?desktop_type=" + encodeURIComponent(slug),
                     {method: "POST", credentials: "same-origin",
                      headers: {"X-CSRF-Token": session.csrf_token}});
      })
      .then(function (response) { return response.json(); })
      .then(function (body) { show(body); poll(); });
  });

  if (busy.indexOf(main.dataset.status) >= 0) {
    poll();
  }
})();
