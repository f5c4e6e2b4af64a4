// The desktop selection page: one card per desktop type the user may use, kept up to
// date by /api/events; start, open (a link: no popup blocker), stop, remove.
"use strict";
(function () {
  var d = iservdesk;
  var container = document.getElementById("desktops");
  var cards = {};
  var busy = ["new", "pulling", "starting"];
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
    if (desktop.name && typeof desktop.name === "object") { card.dataset.title = desktop.name[d.lang] || desktop.name.de; }
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
      var open = document.createElement("a");
      open.className = "button primary open";
      open.href = desktop.url;
      open.target = "_blank";
      open.rel = "noopener";
      open.textContent = d.t("action.open");
      actions.appendChild(open);
      actions.appendChild(d.button(d.t("action.stop"), "stop"));
    } else if (busy.indexOf(desktop.status) < 0) {
      actions.appendChild(d.button(d.t(desktop.status === "error" ? "action.retry" : "action.start"), "start", "primary"));
    }
    if (["running", "stopped", "error"].indexOf(desktop.status) >= 0 && desktop.url) {
      actions.appendChild(d.button(d.t("action.remove"), "remove", "danger"));
    }
    card.appendChild(actions);
  }

  function act(slug, action) {
    var card = cards[slug];
    if (action === "remove" && !window.confirm(d.t("confirm.remove", {name: card.dataset.title}))) { return; }
    d.notice("");
    d.api("POST", "/api/container/" + action + "?desktop_type=" + encodeURIComponent(slug))
      .then(function (desktop) {
        render(desktop);
        if (action === "start" && desktop.status === "running") { d.notice(d.t("ready")); }
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
    });
  }).catch(function (error) { d.notice(error.message); });
  window.setInterval(function () {
    Object.keys(cards).forEach(function (slug) {
      var time = cards[slug].querySelector(".last-access time[datetime]");
      if (time) { time.replaceWith(d.timeElement(time.dateTime)); }
    });
  }, 30000);
})();
