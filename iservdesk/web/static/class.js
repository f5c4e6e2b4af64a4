// A teacher's class page: a tile per member iservdesk knows (from their sign-ins), with
// each desktop's type, status and last use, and for a running desktop that may be watched
// a "Watch" link that opens the portal's view-only viewer in a new tab; above them, "Show
// my screen" for one of the teacher's own running desktops. Refreshed every 5 s; a tile is
// only drawn again when what it shows changed (a link stays clickable).
"use strict";
(function () {
  var d = iservdesk;
  var container = document.getElementById("members");
  var group = container.dataset.group;
  var tiles = {};  // username -> {element, key}

  // The catalog's name of the desktop's type in the page's language, else its slug.
  function titleOf(desktop) {
    var title = desktop.title;
    return (title && (title[d.lang] || title.de)) || desktop.desktop_type;
  }

  function desktopItem(member, desktop, watch) {
    var item = document.createElement("li");
    item.className = "member-desktop";
    item.dataset.name = desktop.name;
    item.dataset.status = desktop.status;
    var type = document.createElement("span");
    type.className = "type";
    type.textContent = titleOf(desktop);
    var badge = document.createElement("span");
    badge.className = "badge " + desktop.status;
    badge.textContent = d.t("status." + desktop.status);
    var access = document.createElement("span");
    access.className = "last-access";
    access.append(d.t("card.last_access") + ": ", d.timeElement(desktop.last_access_at));
    item.append(type, " ", badge, " ", access);
    if (watch && desktop.watchable && desktop.status === "running") {
      // The picture is the portal's (taken with the owner's credentials, which stay there);
      // refreshThumbnails() asks for a new one every 5 s while this page is open.
      var picture = document.createElement("img");
      picture.className = "thumbnail";
      picture.alt = d.t("class.thumbnail_alt", {name: member.display_name});
      picture.dataset.src = "/api/class/" + encodeURIComponent(group) + "/thumbnail/" +
        encodeURIComponent(desktop.name);
      picture.src = picture.dataset.src + "?t=" + Date.now();
      item.appendChild(picture);
    }
    if (watch && desktop.watchable && desktop.status === "running" && desktop.url) {
      var link = d.tabLink(d.t("class.watch"), desktop.url, "button primary watch");
      link.setAttribute("aria-label", d.t("class.watch_label", {name: member.display_name, type: titleOf(desktop)}));
      item.appendChild(link);
    }
    return item;
  }

  function renderMember(member, watch) {
    var element = document.createElement("article");
    element.className = "card member";
    element.id = "member-" + member.username;
    element.dataset.username = member.username;
    var title = document.createElement("h2");
    title.textContent = member.display_name;
    var account = document.createElement("p");
    account.className = "username";
    account.textContent = member.username;
    var login = document.createElement("p");
    login.className = "last-login";
    login.append(d.t("class.last_login") + ": ", d.timeElement(member.last_login_at));
    element.append(title, account, login);
    if (member.desktops.length) {
      var list = document.createElement("ul");
      list.className = "member-desktops";
      member.desktops.forEach(function (desktop) { list.appendChild(desktopItem(member, desktop, watch)); });
      element.appendChild(list);
    } else {
      var none = document.createElement("p");
      none.className = "none";
      none.textContent = d.t("class.no_desktop");
      element.appendChild(none);
    }
    return element;
  }

  function render(body) {
    var seen = {};
    body.members.forEach(function (member, index) {
      var key = JSON.stringify([member, body.watch]);
      var tile = tiles[member.username];
      if (!tile || tile.key !== key) {
        var element = renderMember(member, body.watch);
        if (tile) { tile.element.replaceWith(element); }
        tile = tiles[member.username] = {element: element, key: key};
      }
      if (container.children[index] !== tile.element) {  // in the API's order (by name); moved
        container.insertBefore(tile.element, container.children[index] || null);  // only when needed: keeps the focus
      }
      seen[member.username] = true;
    });
    Object.keys(tiles).forEach(function (username) {
      if (!seen[username]) { tiles[username].element.remove(); delete tiles[username]; }
    });
    d.notice(body.members.length ? "" : d.t("class.empty"));
  }

  // "Show my screen": the teacher's running desktops to choose from, or the demo going on.
  var demoControls = document.getElementById("demo-controls");
  var demoKey = null;

  function renderDemo(body) {
    var key = JSON.stringify([body.demo, body.own_desktops]);
    if (key === demoKey) { return; }  // unchanged: keep the choice and the focus
    demoKey = key;
    demoControls.replaceChildren();
    if (body.demo) {
      var active = document.createElement("p");
      active.className = "demo-active";
      active.append(d.eye(), " ", d.t("demo.active", {desktop: body.demo.desktop, time: d.clockTime(body.demo.since)}));
      demoControls.append(active, d.button(d.t("demo.end"), "end-demo", "button danger"));
    } else if (body.own_desktops.length) {
      var label = document.createElement("label");
      label.textContent = d.t("demo.choose") + " ";
      var choice = document.createElement("select");
      choice.id = "demo-desktop";
      body.own_desktops.forEach(function (desktop) {
        var option = document.createElement("option");
        option.value = desktop.desktop_type;
        option.textContent = titleOf(desktop);
        choice.appendChild(option);
      });
      label.appendChild(choice);
      demoControls.append(label, " ", d.button(d.t("demo.start"), "start-demo", "button primary"));
    } else {
      var none = document.createElement("p");
      none.className = "none";
      none.textContent = d.t("demo.no_desktop");
      demoControls.appendChild(none);
    }
  }

  demoControls.addEventListener("click", function (event) {
    var target = event.target.closest("button[data-action]");
    if (!target) { return; }
    var path = "/api/class/" + encodeURIComponent(group) + "/demo";
    var request = target.dataset.action === "start-demo"
      ? d.api("POST", path + "?desktop_type=" + encodeURIComponent(document.getElementById("demo-desktop").value))
      : d.api("DELETE", path);
    request.then(function () {
      return load().then(function () { d.notice(d.t(target.dataset.action === "start-demo" ? "demo.started" : "demo.ended")); });
    }).catch(function (error) { d.notice(error.message); });
  });

  // Prepared desktops: a type, now or at a time, and what became of earlier preparations.
  var prepareForm = document.getElementById("prepare-form");
  var prepareType = document.getElementById("prepare-type");
  var preparationList = document.getElementById("preparations");
  var preparationKey = null;

  function renderPreparations(body) {
    if (!prepareType.options.length) {
      body.types.forEach(function (type) {
        var option = document.createElement("option");
        option.value = type.desktop_type;
        option.textContent = titleOf(type);
        prepareType.appendChild(option);
      });
    }
    var key = JSON.stringify(body.preparations);
    if (key === preparationKey) { return; }
    preparationKey = key;
    var titles = {};
    body.types.forEach(function (type) { titles[type.desktop_type] = titleOf(type); });
    preparationList.replaceChildren();
    body.preparations.forEach(function (item) {
      var entry = document.createElement("li");
      entry.dataset.id = item.id;
      entry.dataset.state = item.state;
      var values = {type: titles[item.desktop_type] || item.desktop_type, time: d.clockTime(item.run_at),
                    started: item.started, opened: item.opened};
      var text = d.t("prepare." + item.state, values);
      if (item.state === "done" && item.skipped.length) { text += ", " + d.t("prepare.skipped", {count: item.skipped.length}); }
      entry.append(text);
      if (item.state !== "cancelled") {
        entry.append(" ", d.button(d.t("prepare.cancel"), "cancel-preparation", "button"));
      }
      preparationList.appendChild(entry);
    });
    if (!body.preparations.length) {
      var none = document.createElement("li");
      none.className = "none";
      none.textContent = d.t("prepare.none");
      preparationList.appendChild(none);
    }
  }

  prepareForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var at = document.getElementById("prepare-at").value;  // local time, no offset
    var path = "/api/class/" + encodeURIComponent(group) + "/prepare?desktop_type=" + encodeURIComponent(prepareType.value);
    if (at) { path += "&at=" + encodeURIComponent(new Date(at).toISOString()); }
    d.api("POST", path).then(function () {
      return load().then(function () { d.notice(d.t("prepare.planned")); });
    }).catch(function (error) { d.notice(error.message); });
  });

  preparationList.addEventListener("click", function (event) {
    var target = event.target.closest("button[data-action=cancel-preparation]");
    if (!target) { return; }
    d.api("DELETE", "/api/class/" + encodeURIComponent(group) + "/prepare/" + target.closest("li").dataset.id)
      .then(load).catch(function (error) { d.notice(error.message); });
  });

  // Material and assignments: hand out (files uploaded one by one, then copied into the
  // members' homes), set an assignment, collect it, download the collection.
  var handoutList = document.getElementById("handouts");
  var handoutKey = null;
  var classPath = "/api/class/" + encodeURIComponent(group);

  function renderHandouts(body) {
    var key = JSON.stringify(body.handouts);
    if (key === handoutKey) { return; }
    handoutKey = key;
    handoutList.replaceChildren();
    body.handouts.forEach(function (item) {
      var entry = document.createElement("li");
      entry.dataset.id = item.id;
      entry.dataset.kind = item.kind;
      var line = document.createElement("p");
      line.className = "what";
      var values = {name: item.name, have: item.have.length, members: item.members,
                    files: item.files ? item.files.length : 0};
      line.textContent = d.t(item.kind === "material" ? "material.item" : "assignment.item", values);
      entry.appendChild(line);
      if (item.missing_names.length) {
        var missing = document.createElement("p");
        missing.className = "who";
        missing.textContent = d.t("handouts.missing", {names: item.missing_names.join(", ")});
        entry.appendChild(missing);
      }
      if (item.kind === "assignment") {
        var who = document.createElement("p");
        who.className = "who";
        var parts = [];
        if (item.deadline) { parts.push(d.t("assignment.deadline_at", {time: d.clockTime(item.deadline)})); }
        if (item.collected_at) {
          var collected = d.t("assignment.collected", {time: d.clockTime(item.collected_at), count: item.handed_in});
          if (item.nothing_names && item.nothing_names.length) {
            collected += ", " + d.t("assignment.nothing", {names: item.nothing_names.join(", ")});
          }
          parts.push(collected);
        }
        who.textContent = parts.join(" · ");
        entry.appendChild(who);
        entry.append(d.button(d.t("assignment.collect"), "collect", "button primary"), " ");
        if (item.collected_at) {
          var link = document.createElement("a");
          link.className = "button collected";
          link.href = classPath + "/assignments/" + item.id + "/collected.zip";
          link.setAttribute("download", "");
          link.textContent = d.t("assignment.download");
          entry.append(link, " ");
        }
      }
      entry.appendChild(d.button(d.t("handouts.remove"), "remove-handout", "button danger"));
      entry.lastChild.dataset.name = item.name;
      handoutList.appendChild(entry);
    });
    if (!body.handouts.length) {
      var none = document.createElement("li");
      none.className = "hint";
      none.textContent = d.t("handouts.none");
      handoutList.appendChild(none);
    }
  }

  document.getElementById("material-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target;
    var files = Array.prototype.slice.call(document.getElementById("material-files").files);
    var name = document.getElementById("material-name").value;
    form.querySelector("button").disabled = true;
    d.api("POST", classPath + "/material?name=" + encodeURIComponent(name)).then(function (answer) {
      var id = answer.handout.id;
      return files.reduce(function (previous, file) {
        return previous.then(function () {
          d.notice(d.t("material.sending", {name: file.name}));
          return d.upload("/api/upload/material/" + id + "?name=" + encodeURIComponent(file.name), file);
        });
      }, Promise.resolve()).then(function () {
        return d.api("POST", classPath + "/material/" + id + "/hand-out");
      });
    }).then(function (result) {
      form.reset();
      return load().then(function () { d.notice(d.t("material.done", {homes: result.homes})); });
    }).catch(function (error) { d.notice(error.message); })
      .then(function () { form.querySelector("button").disabled = false; });
  });

  document.getElementById("assignment-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var deadline = document.getElementById("assignment-deadline").value;  // local time, no offset
    var path = classPath + "/assignments?name=" + encodeURIComponent(document.getElementById("assignment-name").value);
    if (deadline) { path += "&deadline=" + encodeURIComponent(new Date(deadline).toISOString()); }
    d.api("POST", path).then(function () {
      event.target.reset();
      return load().then(function () { d.notice(d.t("assignment.created")); });
    }).catch(function (error) { d.notice(error.message); });
  });

  handoutList.addEventListener("click", function (event) {
    var target = event.target.closest("button[data-action]");
    if (!target) { return; }
    var id = target.closest("li").dataset.id;
    var request;
    if (target.dataset.action === "collect") {
      request = d.api("POST", classPath + "/assignments/" + id + "/collect").then(function () {
        return load().then(function () { d.notice(d.t("assignment.collected_notice")); });
      });
    } else if (target.dataset.action === "remove-handout") {
      if (!window.confirm(d.t("handouts.confirm_remove", {name: target.dataset.name}))) { return; }
      request = d.api("DELETE", classPath + "/handouts/" + id).then(load);
    }
    if (request) { request.catch(function (error) { d.notice(error.message); }); }
  });

  function load() {
    return d.api("GET", "/api/class/" + encodeURIComponent(group)).then(function (body) {
      latest = body;
      renderDemo(body);
      renderPreparations(body);
      renderHandouts(body);
      render(body);
    }).catch(function (error) { d.notice(error.message); });
  }

  var latest = null;  // the class as last loaded, for the confirmation's count

  // The end of a lesson: one confirmation that says how many, then the files stay.
  document.getElementById("stop-class").addEventListener("click", function () {
    var running = [];
    (latest ? latest.members : []).forEach(function (member) {
      member.desktops.forEach(function (desktop) {
        if (["running", "queued", "starting", "pulling"].indexOf(desktop.status) >= 0) { running.push(desktop); }
      });
    });
    if (!running.length) { d.notice(d.t("class.nothing_to_stop")); return; }
    if (!window.confirm(d.t("class.confirm_stop_all", {count: running.length}))) { return; }
    d.api("POST", "/api/class/" + encodeURIComponent(group) + "/stop-all").then(function (answer) {
      return load().then(function () { d.notice(d.t("class.stopped", {count: answer.stopped})); });
    }).catch(function (error) { d.notice(error.message); });
  });

  function refreshThumbnails() {
    container.querySelectorAll("img.thumbnail").forEach(function (picture) {
      picture.src = picture.dataset.src + "?t=" + Date.now();
    });
  }

  load();
  window.setInterval(load, 5000);
  window.setInterval(refreshThumbnails, 5000);
  window.setInterval(function () {  // "vor 2 Minuten" moves on between refreshes
    container.querySelectorAll("time[datetime]").forEach(function (time) {
      time.replaceWith(d.timeElement(time.dateTime));
    });
  }, 30000);
})();
