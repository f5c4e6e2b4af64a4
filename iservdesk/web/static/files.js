// The file browser of one home (a dialog on the dashboard): list a folder, go into
// folders, download a file (or a folder as a zip), delete, and upload several files at
// once by drag and drop or the picker, one after another with a progress bar each.
// Uploads go to the folder shown, or to Uploads when the home itself is shown. Sizes are
// checked here first (UPLOAD_MAX_SIZE, HOME_QUOTA) so that a refusal comes at once; the
// portal checks them again before it writes.
"use strict";
var iservdeskFiles = (function () {
  var d = iservdesk;
  var dialog = document.getElementById("files-dialog");
  var body = dialog.querySelector("tbody");
  var pathNav = document.getElementById("files-path");
  var progressList = document.getElementById("files-progress");
  var drop = document.getElementById("files-drop");
  var input = document.getElementById("files-input");
  var state = {slug: null, path: "", listing: null};

  function query(extra) {
    var parts = ["desktop_type=" + encodeURIComponent(state.slug)];
    Object.keys(extra || {}).forEach(function (key) { parts.push(key + "=" + encodeURIComponent(extra[key])); });
    return parts.join("&");
  }

  function join(path, name) { return path ? path + "/" + name : name; }
  function target() { return state.path || "Uploads"; }
  function say(text) { document.getElementById("files-notice").textContent = text || ""; }

  function renderPath() {
    pathNav.replaceChildren();
    var parts = state.path ? state.path.split("/") : [];
    var home = d.button(d.t("files.home"), "go", "link");
    home.dataset.path = "";
    pathNav.appendChild(home);
    parts.forEach(function (part, index) {
      var step = d.button(part, "go", "link");
      step.dataset.path = parts.slice(0, index + 1).join("/");
      pathNav.append(" / ", step);
    });
    document.getElementById("files-target").textContent = d.t("files.target", {folder: "~/" + target()});
  }

  function row(entry) {
    var line = document.createElement("tr");
    line.dataset.name = entry.name;
    line.dataset.kind = entry.kind;
    var name = document.createElement("td");
    var path = join(state.path, entry.name);
    if (entry.kind === "folder") {
      var open = d.button(entry.name + "/", "go", "link");
      open.dataset.path = path;
      name.appendChild(open);
    } else if (entry.kind === "file") {
      var link = document.createElement("a");
      link.href = "/api/files/download?" + query({path: path});
      link.setAttribute("download", entry.name);
      link.textContent = entry.name;
      link.setAttribute("aria-label", d.t("files.download_label", {name: entry.name}));
      name.appendChild(link);
    } else {
      name.append(entry.name + " ");
      var kind = document.createElement("span");
      kind.className = "hint";
      kind.textContent = "(" + d.t(entry.kind === "link" ? "files.link" : "files.other") + ")";
      name.appendChild(kind);
    }
    var size = document.createElement("td");
    size.textContent = entry.kind === "folder" ? d.t("files.folder") : d.size(entry.size);
    var modified = document.createElement("td");
    modified.appendChild(d.timeElement(entry.modified_at));
    var actions = document.createElement("td");
    var remove = d.button(d.t("files.delete"), "delete", "danger");
    remove.setAttribute("aria-label", d.t("files.delete_label", {name: entry.name}));
    remove.dataset.path = path;
    remove.dataset.name = entry.name;
    actions.appendChild(remove);
    line.append(name, size, modified, actions);
    return line;
  }

  function load(path) {
    state.path = path;
    renderPath();
    return d.api("GET", "/api/files?" + query({path: path})).then(function (listing) {
      state.listing = listing;
      document.getElementById("files-usage").textContent = d.t("files.used", {used: d.size(listing.used),
                                                                              quota: d.size(listing.quota)});
      body.replaceChildren();
      listing.entries.forEach(function (entry) { body.appendChild(row(entry)); });
      if (!listing.entries.length) {
        var empty = document.createElement("tr");
        var cell = document.createElement("td");
        cell.colSpan = 4;
        cell.className = "hint";
        cell.textContent = d.t("files.empty");
        empty.appendChild(cell);
        body.appendChild(empty);
      }
    }).catch(function (error) {
      if (path) { return load(""); }  // e.g. Uploads was deleted meanwhile
      say(error.message);
    });
  }

  function open(slug, title) {
    state.slug = slug;
    document.getElementById("files-title").textContent = d.t("files.title", {name: title});
    document.getElementById("files-zip").href = "/api/files/home.zip?" + query();
    progressList.replaceChildren();
    say("");
    if (!dialog.open) { dialog.showModal(); }
    load("");
  }

  // One file after another: what does not fit is refused here, with the numbers.
  function send(files) {
    var queue = Array.prototype.slice.call(files);
    var folder = target();
    function next() {
      var file = queue.shift();
      if (!file) { return load(state.path); }
      var item = document.createElement("li");
      var label = document.createElement("span");
      label.textContent = d.t("files.uploading", {name: file.name});
      var bar = document.createElement("progress");
      bar.max = 1;
      bar.value = 0;
      bar.setAttribute("aria-label", file.name);
      item.append(label, " ", bar);
      progressList.appendChild(item);
      var listing = state.listing || {upload_max: Infinity, quota: Infinity, used: 0};
      var refusal = null;
      if (file.size > listing.upload_max) {
        refusal = d.t("files.too_large", {name: file.name, size: d.size(file.size), max: d.size(listing.upload_max)});
      } else if (listing.used + file.size > listing.quota) {
        refusal = d.t("files.no_room", {name: file.name, size: d.size(file.size), used: d.size(listing.used),
                                        quota: d.size(listing.quota)});
      }
      if (refusal) {
        item.className = "refused";
        label.textContent = refusal;
        bar.remove();
        return next();
      }
      return d.upload("/api/upload/home?" + query({folder: folder, name: file.name}), file, function (fraction) {
        bar.value = fraction;
      }).then(function (answer) {
        bar.value = 1;
        item.className = "done";
        label.textContent = d.t("files.uploaded", {name: file.name});
        listing.used = answer.used;
      }, function (error) {
        item.className = "refused";
        label.textContent = file.name + ": " + error.message;
        bar.remove();
      }).then(next);
    }
    return next().then(function () {
      if (state.path !== folder && !state.path) { return load(folder); }  // show where they went
    });
  }

  dialog.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button) { return; }
    if (button.dataset.action === "go") { say(""); load(button.dataset.path); }
    if (button.dataset.action === "delete") {
      if (!window.confirm(d.t("files.confirm_delete", {name: button.dataset.name}))) { return; }
      d.api("DELETE", "/api/files?" + query({path: button.dataset.path})).then(function () {
        say(d.t("files.deleted", {name: button.dataset.name}));
        return load(state.path);
      }).catch(function (error) { say(error.message); });
    }
  });
  document.getElementById("files-close").addEventListener("click", function () { dialog.close(); });
  input.addEventListener("change", function () {
    send(input.files).then(function () { input.value = ""; });
  });
  ["dragenter", "dragover"].forEach(function (kind) {
    drop.addEventListener(kind, function (event) { event.preventDefault(); drop.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (kind) {
    drop.addEventListener(kind, function () { drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (event) {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) { send(event.dataTransfer.files); }
  });

  return {open: open};
})();
