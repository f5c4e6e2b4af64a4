// The admin panel: statistics and every desktop, updated live from /api/events; stop,
// remove, stop all (with a confirmation that says how many), and a filter box. Below, the
// home folders (volumes) with their owners, the kept ones marked.
"use strict";
(function () {
  var d = iservdesk;
  var body = document.querySelector("#containers tbody");
  var filter = document.getElementById("filter");
  var current = [];

  function cell(content) {
    var td = document.createElement("td");
    if (typeof content === "string" || typeof content === "number") { td.textContent = content; }
    else if (content) { td.appendChild(content); }
    return td;
  }

  // One row across the table that says it has nothing to show.
  function emptyRow(tbody, key, columns) {
    var tr = document.createElement("tr");
    var td = cell(d.t(key));
    td.colSpan = columns;
    tr.appendChild(td);
    tbody.appendChild(tr);
  }


  function render() {
    var needle = filter.value.trim().toLowerCase();
    body.replaceChildren();
    var shown = current.filter(function (row) {
      return !needle || [row.owner, row.owner_name, row.desktop_type, row.status, d.t("status." + row.status)]
        .join(" ").toLowerCase().indexOf(needle) >= 0;
    });
    shown.forEach(function (row) {
      var tr = document.createElement("tr");
      tr.dataset.name = row.name;
      tr.dataset.id = row.container_id || row.name;
      var owner = document.createElement("span");
      owner.textContent = row.owner_name + " (" + row.owner + ")";
      var badge = document.createElement("span");
      badge.className = "badge " + row.status;
      badge.textContent = d.t("status." + row.status);
      if (row.status === "queued" && row.queue_position) {  // its place in the start queue
        badge.textContent += " · " + d.t("admin.place", {position: row.queue_position});
      }
      var actions = document.createElement("span");
      actions.className = "actions";
      if (["running", "queued", "starting", "pulling", "new"].indexOf(row.status) >= 0) {
        var stop = d.button(d.t("action.stop"), "stop");
        stop.setAttribute("aria-label", d.t("action.stop") + " " + row.name);
        actions.appendChild(stop);
      }
      var remove = d.button(d.t("action.remove"), "remove", "danger");
      remove.setAttribute("aria-label", d.t("action.remove") + " " + row.name);
      actions.appendChild(remove);
      [cell(owner), cell(row.desktop_type), cell(badge), cell(d.timeElement(row.created_at)),
       cell(d.timeElement(row.last_access_at)), cell(row.host_port || "–"), cell(actions)]
        .forEach(function (td) { tr.appendChild(td); });
      body.appendChild(tr);
    });
    if (!shown.length) {
      emptyRow(body, "admin.empty", 7);
    }
  }

  function load() {
    return d.api("GET", "/api/admin/containers").then(function (answer) {
      current = answer.containers;
      document.getElementById("stat-total").textContent = answer.statistics.total;
      document.getElementById("stat-running").textContent = answer.statistics.running;
      document.getElementById("stat-users").textContent = answer.statistics.active_users;
      document.getElementById("stat-queued").textContent = answer.statistics.queued;
      render();
    }).catch(function (error) { d.notice(error.message); });
  }

  var homes = document.querySelector("#homes tbody");

  function renderHomes(list, quota) {
    homes.replaceChildren();
    document.getElementById("homes-sizes").textContent = d.t("admin.homes_sizes", {quota: d.size(quota)});
    list.forEach(function (home) {
      var tr = document.createElement("tr");
      tr.dataset.volume = home.name;
      tr.dataset.status = home.status;
      var size = document.createElement("span");
      size.textContent = home.size === null ? d.t("admin.home_size_unknown") : d.size(home.size);
      if (home.over_quota) {
        tr.className = "over-quota";
        var flag = document.createElement("strong");
        flag.className = "badge error";
        flag.textContent = d.t("admin.home_over_quota", {quota: d.size(quota)});
        size.append(" ", flag);
      }
      var who = home.display_name ? home.display_name + " (" + home.username + ")" : (home.username || "");
      var owner = home.owner ? (who ? who + " · " : "") + home.owner : d.t("admin.home_unknown_owner");
      var status = document.createElement("span");
      var badge = document.createElement("span");
      badge.className = "badge " + (home.status === "in_use" ? "running" : "stopped");
      badge.textContent = d.t(home.status === "in_use" ? "admin.home_in_use" : "admin.home_kept");
      status.appendChild(badge);
      var why = home.username_reused ? "admin.home_reused" : (home.owner_known ? "" : "admin.home_unknown_owner");
      if (why) { status.appendChild(document.createTextNode(" " + d.t(why))); }
      [cell(home.name), cell(owner), cell(home.desktop || "–"),
       cell(home.created_at ? d.timeElement(home.created_at) : "–"), cell(size), cell(status)]
        .forEach(function (td) { tr.appendChild(td); });
      homes.appendChild(tr);
    });
    if (!list.length) {
      emptyRow(homes, "admin.homes_empty", 6);
    }
  }

  function loadHomes() {
    return d.api("GET", "/api/admin/homes").then(function (answer) { renderHomes(answer.homes, answer.quota); })
      .catch(function (error) { d.notice(error.message); });
  }

  // The Swarm's nodes (DOCKER_BACKEND=swarm): state, memory, desktops, and which desktops
  // cannot start while their home's node is down or drained.
  var nodesSection = document.getElementById("nodes-section");

  // [text, badge class] of a node's state.
  function nodeState(node) {
    if (node.state !== "ready") { return ["admin.node_down", "error"]; }
    if (node.availability === "drain") { return ["admin.node_drain", "stopped"]; }
    if (node.availability !== "active") { return ["admin.node_pause", "stopped"]; }
    return ["admin.node_ready", "running"];
  }

  function loadNodes() {
    return d.api("GET", "/api/admin/nodes").then(function (answer) {
      if (answer.backend !== "swarm") { return; }
      nodesSection.hidden = false;
      if (answer.shared_homes) { document.getElementById("nodes-intro").textContent = d.t("admin.nodes_intro_shared"); }
      var tbody = nodesSection.querySelector("tbody");
      tbody.replaceChildren();
      answer.nodes.forEach(function (node) {
        var tr = document.createElement("tr");
        tr.dataset.node = node.hostname;
        var name = document.createElement("span");
        name.textContent = node.hostname + " (" + node.address + ")" +
          (node.manager ? " · " + d.t("admin.node_manager") : "");
        var state = nodeState(node);
        var badge = document.createElement("span");
        badge.className = "badge " + state[1];
        badge.textContent = d.t(state[0]);
        var desktops = document.createElement("span");
        desktops.textContent = d.t("admin.node_desktops_text", {running: node.desktops.length, homes: node.homes.length});
        if (node.affected.length) {
          var warning = document.createElement("strong");
          warning.className = "node-affected";
          warning.textContent = d.t("admin.node_affected", {names: node.affected.join(", ")});
          desktops.append(document.createElement("br"), warning);
        }
        [cell(name), cell(badge), cell(d.t("admin.node_memory_text", {
          reserved: d.size(node.reserved), memory: d.size(node.memory), free: d.size(node.free)})), cell(desktops)]
          .forEach(function (td) { tr.appendChild(td); });
        tbody.appendChild(tr);
      });
    }).catch(function (error) { d.notice(error.message); });
  }

  // The classes' prepared desktops (with CLASSROOM on): which class, type, when, and what became of it.
  var preparations = document.getElementById("admin-preparations");

  function loadPreparations() {
    if (!preparations) { return; }
    d.api("GET", "/api/admin/preparations").then(function (answer) {
      preparations.replaceChildren();
      answer.preparations.forEach(function (item) {
        var entry = document.createElement("li");
        entry.textContent = item.group + ": " + d.t("prepare." + item.state, {
          type: item.desktop_type, time: d.clockTime(item.run_at), started: item.started, opened: item.opened}) +
          " (" + item.created_by + ")";
        preparations.appendChild(entry);
      });
      if (!answer.preparations.length) {
        var none = document.createElement("li");
        none.className = "none";
        none.textContent = d.t("prepare.none");
        preparations.appendChild(none);
      }
    }).catch(function (error) { d.notice(error.message); });
  }

  // Deleting a person's data: first what goes, then one confirmation.
  var forgetPlan = document.getElementById("forget-plan");
  var forgetting = null;  // the account name or uuid shown in the plan

  document.getElementById("forget-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var person = document.getElementById("forget-person").value.trim();
    d.api("GET", "/api/admin/forget/" + encodeURIComponent(person)).then(function (answer) {
      forgetting = {person: person, username: answer.username};
      var list = forgetPlan.querySelector("ul");
      list.replaceChildren();
      var lines = [];
      [["containers", "forget.container"], ["volumes", "forget.volume"], ["desktops", "forget.desktop"]]
        .forEach(function (kind) {
          answer[kind[0]].forEach(function (name) { lines.push(d.t(kind[1], {name: name})); });
        });
      lines.push(d.t("forget.account", answer), d.t("forget.events", answer));
      lines.forEach(function (line) {
        var item = document.createElement("li");
        item.textContent = line;
        list.appendChild(item);
      });
      forgetPlan.hidden = false;
    }).catch(function (error) { forgetPlan.hidden = true; d.notice(error.message); });
  });

  document.getElementById("forget-confirm").addEventListener("click", function () {
    if (!forgetting || !window.confirm(d.t("forget.really", {username: forgetting.username}))) { return; }
    d.api("POST", "/api/admin/forget/" + encodeURIComponent(forgetting.person)).then(function (answer) {
      forgetPlan.hidden = true;
      forgetting = null;
      d.notice(d.t("forget.done", {pseudonym: answer.pseudonym}));
      return load().then(loadHomes);
    }).catch(function (error) { d.notice(error.message); });
  });

  body.addEventListener("click", function (event) {
    var target = event.target.closest("button[data-action]");
    if (!target) { return; }
    var row = target.closest("tr");
    var action = target.dataset.action;
    if (action === "remove" && !window.confirm(d.t("confirm.remove", {name: row.dataset.name}))) { return; }
    var path = "/api/admin/container/" + encodeURIComponent(row.dataset.id) + "/" + action;
    d.api(action === "remove" ? "DELETE" : "POST", path).then(load).catch(function (error) { d.notice(error.message); });
  });

  document.getElementById("stop-all").addEventListener("click", function () {
    var running = current.filter(function (row) { return ["running", "queued", "starting", "pulling", "new"].indexOf(row.status) >= 0; });
    if (!window.confirm(d.t("confirm.stop_all", {count: running.length}))) { return; }
    d.api("POST", "/api/admin/containers/stop-all").then(function (answer) {
      d.notice(d.t("admin.stopped_count", {count: answer.stopped}));
      return load();
    }).catch(function (error) { d.notice(error.message); });
  });

  filter.addEventListener("input", render);
  var pending = null;
  load().then(function () {
    d.events(function () {
      // A burst of changes (stop all) reloads the table once.
      if (pending) { return; }
      pending = window.setTimeout(function () { pending = null; load(); loadHomes(); loadNodes(); }, 150);
    });
  });
  loadHomes();
  loadNodes();
  window.setInterval(loadNodes, 15000);  // a node's state changes without a desktop's event
  loadPreparations();
  document.querySelectorAll("#audit time[datetime]").forEach(function (time) { time.replaceWith(d.timeElement(time.dateTime)); });

  // The old product's containers (iserv-remote-desktop): shown only when there are some.
  var seed = document.getElementById("seed");
  function loadSeed() {
    return d.api("GET", "/api/admin/import-seed").then(function (body) {
      var list = seed.querySelector("ul");
      list.replaceChildren();
      body.moves.forEach(function (move) {
        var item = document.createElement("li");
        item.textContent = move.why ? d.t("seed.skip", {container: move.container, why: move.why})
          : d.t("seed.move", {container: move.container, username: move.username, type: move.desktop_type});
        list.appendChild(item);
      });
      seed.hidden = !body.moves.length;
      seed.querySelector("button").hidden = !body.moves.some(function (move) { return !move.why; });
    }).catch(function (error) { d.notice(error.message); });
  }
  seed.querySelector("button").addEventListener("click", function () {
    if (!window.confirm(d.t("seed.confirm"))) { return; }
    d.api("POST", "/api/admin/import-seed").then(function (done) {
      d.notice(d.t("seed.done", {moved: done.moved.length, failed: done.failed.length}));
      return loadSeed();
    }).catch(function (error) { d.notice(error.message); });
  });
  loadSeed();
})();
