// API tokens (iservdesk/tokens.py): on the overview a person's own, on the admin panel
// the service accounts' (with admin rights). A new token is shown once, to copy; the list
// says when each was last used and revokes.
"use strict";
(function () {
  var d = iservdesk;
  var section = document.getElementById("tokens");
  if (!section) { return; }
  var admin = section.dataset.scope === "admin";
  var base = admin ? "/api/admin/tokens" : "/api/tokens";
  var list = section.querySelector("ul");
  var shown = document.getElementById("token-new");
  var states = {active: d.t("tokens.state_active"), expired: d.t("tokens.state_expired"),
                revoked: d.t("tokens.state_revoked")};

  function load() {
    return d.api("GET", base).then(function (body) {
      list.replaceChildren();
      body.tokens.filter(function (item) { return !admin || item.admin; }).forEach(function (item) {
        var entry = document.createElement("li");
        entry.dataset.id = item.id;
        entry.dataset.state = item.state;
        var text = d.t("tokens.item", {name: item.name, state: states[item.state] || item.state,
                                       expires: d.clockTime(item.expires_at)});
        if (admin) { text = item.owner + ": " + text; }
        entry.append(text, " · " + d.t("tokens.last_used") + ": ", d.timeElement(item.last_used_at));
        if (item.state === "active") { entry.append(" ", d.button(d.t("tokens.revoke"), "revoke", "danger")); }
        list.appendChild(entry);
      });
      if (!list.children.length) {
        var none = document.createElement("li");
        none.className = "hint";
        none.textContent = d.t("tokens.none");
        list.appendChild(none);
      }
    }).catch(function (error) { d.notice(error.message); });
  }

  section.querySelector("form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target;
    var query = "?name=" + encodeURIComponent(form.elements.name.value) +
      "&expires_in_days=" + encodeURIComponent(form.elements.days.value);
    if (admin) { query += "&service=" + encodeURIComponent(form.elements.name.value); }
    d.api("POST", base + query).then(function (made) {
      shown.hidden = false;
      shown.querySelector("code").textContent = made.token;
      form.reset();
      return load();
    }).catch(function (error) { d.notice(error.message); });
  });

  list.addEventListener("click", function (event) {
    var target = event.target.closest("button[data-action=revoke]");
    if (!target) { return; }
    d.api("DELETE", base + "/" + target.closest("li").dataset.id).then(load)
      .catch(function (error) { d.notice(error.message); });
  });

  section.addEventListener("toggle", function () { if (section.open) { load(); } });
})();
