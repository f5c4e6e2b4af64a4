// The desktop selection page: one card per desktop type the user may use, kept up to
// date by /api/events; start, open (a link: no popup blocker), stop, remove. With the
// classroom on: a banner while a teacher watches one of the user's desktops (from
// /api/watching, fetched again on each "watch" event of /api/events, on each reconnect of
// that stream and every 30 s in case an event was missed), the watches of the
// last 30 days, a card for each teacher's screen shown to one of the user's classes (a
// demo, kept up to date the same way), and for teachers and admins their classes.
"use strict";
(function () {
  var d = iservdesk;
  var container = document.getElementById("desktops");
  var cards = {};
  var busy = ["new", "queued", "pulling", "starting"];
  var BUNDLED_ICONS = ["code", "desktop", "browser"];

  function render(desktop) {
    var card = cards[desktop.desktop_type];
    if (!card) {
      card = document.createElement("article");
      card.className = "card";
      card.id = "desktop-" + desktop.desktop_type;
      cards[desktop.desktop_type] = card;
      container.appendChild(card);
    }
    var title = desktop.title || desktop.name;
    if (title && typeof title === "object") { card.dataset.title = title[d.lang] || title.de; }
    if (desktop.description) { card.dataset.description = desktop.description[d.lang] || desktop.description.de || ""; }
    if (desktop.icon) { card.dataset.icon = desktop.icon; }
    card.dataset.status = desktop.status;
    card.dataset.url = desktop.url || "";
    card.replaceChildren();

    var icon = document.createElement("div");
    icon.className = "icon";
    icon.setAttribute("aria-hidden", "true");
    var name = card.dataset.icon || "desktop";
    if (BUNDLED_ICONS.indexOf(name) >= 0) {
      var picture = document.createElement("img");
      picture.src = "/static/icons/" + name + ".svg";
      picture.alt = "";
      icon.appendChild(picture);
    } else {
      icon.textContent = name;  // an emoji from the catalog
    }
    var title = document.createElement("h2");
    title.textContent = card.dataset.title;
    var description = document.createElement("p");
    description.className = "description";
    description.textContent = card.dataset.description || "";
    var status = document.createElement("p");
    status.className = "status";
    var badge = document.createElement("span");
    badge.className = "badge " + desktop.status;
    badge.textContent = d.t("status." + desktop.status);
    status.appendChild(badge);
    var access = document.createElement("p");
    access.className = "last-access";
    access.append(d.t("card.last_access") + ": ", d.timeElement(desktop.last_access_at));
    card.append(icon, title, description, status, access);

    if (busy.indexOf(desktop.status) >= 0) {
      var progress = document.createElement("progress");
      progress.max = 100;
      progress.setAttribute("aria-label", d.t("status." + desktop.status));
      if (desktop.progress !== null && desktop.progress !== undefined) { progress.value = desktop.progress; }
      var progressText = document.createElement("p");
      progressText.className = "progress-text";
      progressText.textContent = desktop.status === "pulling" && desktop.progress !== null && desktop.progress !== undefined
        ? d.t("progress.pulling", {percent: desktop.progress}) : d.t("progress.starting");
      if (desktop.status === "queued") {
        progressText.className = "progress-text queue-position";
        progressText.textContent = d.t("progress.queued", {position: desktop.queue_position || "…"});
        progress.removeAttribute("value");  // waiting: no progress to show
      }
      card.append(progress, progressText);
    }
    if (desktop.status === "error" && desktop.message) {
      var message = document.createElement("p");
      message.className = "message";
      message.setAttribute("role", "alert");
      message.textContent = d.t("error.start_failed");
      card.appendChild(message);
    }

    var actions = document.createElement("div");
    actions.className = "actions";
    if (desktop.status === "running") {
      actions.appendChild(d.tabLink(d.t("action.open"), desktop.url, "button primary open"));
      actions.appendChild(d.button(d.t("action.stop"), "stop"));
    } else if (desktop.status === "queued") {
      actions.appendChild(d.button(d.t("action.cancel"), "stop"));  // leaves the queue
    } else if (busy.indexOf(desktop.status) < 0) {
      actions.appendChild(d.button(d.t(desktop.status === "error" ? "action.retry" : "action.start"), "start", "primary"));
    }
    if (["running", "stopped", "error"].indexOf(desktop.status) >= 0 && desktop.url) {
      actions.appendChild(d.button(d.t("action.remove"), "remove", "danger"));
    }
    card.appendChild(actions);
    if (desktop.status !== "absent" && desktop.created_at) {  // a home exists: its files (files.js)
      var files = d.button(d.t("files.button"), "files", "files-button");
      files.dataset.title = card.dataset.title;
      card.appendChild(files);
      // Live events carry no size: the card keeps the one it had.
      if (desktop.home_size !== undefined) { card.dataset.homeSize = desktop.home_size === null ? "" : desktop.home_size; }
      if (card.dataset.homeSize) {
        var size = document.createElement("p");
        size.className = "home-size";
        size.textContent = d.t("files.card_size", {size: d.size(Number(card.dataset.homeSize))});
        card.appendChild(size);
      }
      document.getElementById("export").hidden = false;
    }
    // The idle warning: from the server's "seconds until", counted on this page's clock.
    var now = Date.now();
    card.dataset.warnAt = desktop.idle_warning_in === null || desktop.idle_warning_in === undefined
      ? "" : String(now + desktop.idle_warning_in * 1000);
    card.dataset.stopAt = desktop.idle_stop_in === null || desktop.idle_stop_in === undefined
      ? "" : String(now + desktop.idle_stop_in * 1000);
    showIdleWarning(card);
  }

  // Shown from IDLE_WARNING before the idle stop: how long is left, and one click to keep it.
  function showIdleWarning(card) {
    var warning = card.querySelector(".idle-warning");
    var due = card.dataset.warnAt && Date.now() >= Number(card.dataset.warnAt);
    if (!due) {
      if (warning) { warning.remove(); }
      return;
    }
    var minutes = Math.ceil((Number(card.dataset.stopAt) - Date.now()) / 60000);
    var text = minutes > 1 ? d.t("idle.warning", {minutes: minutes}) : d.t("idle.warning_soon");
    if (!warning) {
      warning = document.createElement("div");
      warning.className = "idle-warning";
      warning.setAttribute("role", "alert");
      var line = document.createElement("p");
      warning.append(line, d.button(d.t("idle.keep"), "keep", "primary"));
      card.insertBefore(warning, card.querySelector(".actions"));
    }
    if (warning.firstChild.textContent !== text) { warning.firstChild.textContent = text; }
  }

  window.setInterval(function () {
    Object.keys(cards).forEach(function (slug) { showIdleWarning(cards[slug]); });
  }, 5000);

  function act(slug, action) {
    var card = cards[slug];
    if (action === "files") { iservdeskFiles.open(slug, card.dataset.title); return; }
    if (action === "remove" && !window.confirm(d.t("confirm.remove", {name: card.dataset.title}))) { return; }
    d.notice("");
    d.api("POST", "/api/container/" + action + "?desktop_type=" + encodeURIComponent(slug))
      .then(function (desktop) {
        render(desktop);
        if (action === "start" && desktop.status === "running") { d.notice(d.t("ready")); }
        if (action === "keep") { d.notice(d.t("idle.kept")); }
      })
      .catch(function (error) { d.notice(error.message); });
  }

  container.addEventListener("click", function (event) {
    var target = event.target.closest("button[data-action]");
    if (target) { act(target.closest(".card").id.slice("desktop-".length), target.dataset.action); }
  });

  d.api("GET", "/api/container/list").then(function (body) {
    if (!body.desktops.length) { d.notice(d.t("desktops.none")); }
    body.desktops.forEach(render);
    d.events(function (desktop) {
      var before = cards[desktop.desktop_type] && cards[desktop.desktop_type].dataset.status;
      if (cards[desktop.desktop_type]) { render(desktop); }
      if (desktop.status === "running" && before && before !== "running") { d.notice(d.t("ready")); }
    }, watching ? function (kind) {
      if (kind !== "demo") { loadWatching(); }
      if (kind !== "watch") { loadDemos(); }
    } : null);
  }).catch(function (error) { d.notice(error.message); });

  // -- the classroom --

  var watching = document.getElementById("watching");
  var watchHistory = document.getElementById("watch-history");
  var classes = document.getElementById("classes");

  function renderWatching(body) {
    watching.replaceChildren();
    body.now.forEach(function (watch) {
      var line = document.createElement("p");
      line.className = "watcher";
      var text = document.createElement("strong");
      text.textContent = d.t(watch.kind === "thumbnail" ? "watching.thumbnail" : "watching.now",
                             {watcher: watch.watcher, time: d.clockTime(watch.since)});
      var desktop = document.createElement("span");
      desktop.className = "desktop-name";
      desktop.textContent = "(" + watch.desktop + ")";
      line.append(d.eye(), text, " ", desktop);
      watching.appendChild(line);
    });
    if (body.now.length) {
      var hint = document.createElement("p");
      hint.className = "hint";
      hint.textContent = d.t("watching.view_only");
      watching.appendChild(hint);
    }
    watching.hidden = !body.now.length;

    var list = watchHistory.querySelector("ul");
    list.replaceChildren();
    body.history.forEach(function (watch) {
      var item = document.createElement("li");
      item.textContent = d.t("history.item", {
        watcher: watch.watcher, desktop: watch.desktop, from: d.clockTime(watch.started_at),
        to: watch.ended_at ? d.clockTime(watch.ended_at) : d.t("history.ongoing")});
      list.appendChild(item);
    });
    watchHistory.hidden = !body.history.length;
  }

  function loadWatching() {
    d.api("GET", "/api/watching").then(renderWatching).catch(function () { /* next round */ });
  }

  // A teacher's demo to one of the user's classes: a card that opens the view-only viewer.
  var demos = document.getElementById("demos");

  function renderDemos(body) {
    demos.replaceChildren();
    body.demos.forEach(function (demo) {
      var card = document.createElement("article");
      card.className = "card demo-card";
      card.dataset.desktop = demo.desktop;
      var title = document.createElement("h2");
      title.textContent = d.t("demo.card_title", {teacher: demo.teacher});
      var text = document.createElement("p");
      text.textContent = d.t("demo.card_text", {teacher: demo.teacher, group: demo.group_name || demo.group,
                                                 time: d.clockTime(demo.since)});
      card.append(title, text, d.tabLink(d.t("demo.open"), demo.url, "button primary open-demo"));
      demos.appendChild(card);
    });
    demos.hidden = !body.demos.length;
  }

  function loadDemos() {
    d.api("GET", "/api/demos").then(renderDemos).catch(function () { /* next round */ });
  }

  if (watching) {
    loadWatching();
    loadDemos();
    window.setInterval(function () { loadWatching(); loadDemos(); }, 30000);
  }

  if (classes) {
    d.api("GET", "/api/classes").then(function (body) {
      var list = document.getElementById("class-list");
      list.replaceChildren();
      body.classes.forEach(function (item) {
        var entry = document.createElement("li");
        var link = document.createElement("a");
        link.href = "/class/" + encodeURIComponent(item.group);
        link.textContent = item.name || item.group;
        var count = document.createElement("span");
        count.className = "count";
        count.textContent = d.t("classes.members", {count: item.members});
        entry.append(link, " ", count);
        list.appendChild(entry);
      });
      if (!body.classes.length) {
        var none = document.createElement("li");
        none.className = "none";
        none.textContent = d.t("classes.none");
        list.appendChild(none);
      }
      classes.hidden = false;
    }).catch(function () { classes.hidden = true; });  // 403: not a teacher; 404: classroom off
  }

  window.setInterval(function () {
    Object.keys(cards).forEach(function (slug) {
      var time = cards[slug].querySelector(".last-access time[datetime]");
      if (time) { time.replaceWith(d.timeElement(time.dateTime)); }
    });
  }, 30000);
})();
