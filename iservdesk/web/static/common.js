// Shared by the portal's pages: texts of the page's language, API calls with the CSRF
// token, relative times ("vor 5 Minuten") with the exact time on hover.
"use strict";
var iservdesk = (function () {
  var texts = JSON.parse(document.getElementById("i18n").textContent);
  var lang = document.documentElement.lang || "de";
  var csrf = document.querySelector('meta[name="csrf-token"]').content;

  function t(key, values) {
    var text = texts[key] || key;
    Object.keys(values || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(values[name]);
    });
    return text;
  }

  function errorText(body) {
    var code = body && body.error;
    return texts["error." + code] || (body && body.message) || texts["error.generic"];
  }

  // Resolves with the JSON body; rejects with a text a student understands.
  function api(method, path) {
    var options = {method: method, credentials: "same-origin", headers: {"Accept": "application/json"}};
    if (method !== "GET") { options.headers["X-CSRF-Token"] = csrf; }
    return fetch(path, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) { throw new Error(errorText(body)); }
        return body;
      });
    }, function () { throw new Error(texts["error.generic"]); });
  }

  var relative = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(lang, {numeric: "auto"}) : null;
  var exact = new Intl.DateTimeFormat(lang, {dateStyle: "medium", timeStyle: "short"});

  function timeElement(iso) {
    var element = document.createElement("time");
    if (!iso) { element.textContent = t("card.never"); return element; }
    var date = new Date(iso);
    element.dateTime = iso;
    element.title = exact.format(date);
    var seconds = Math.round((date.getTime() - Date.now()) / 1000);
    var units = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
    var text = exact.format(date);
    if (relative) {
      for (var i = 0; i < units.length; i++) {
        if (Math.abs(seconds) >= units[i][1] || units[i][0] === "second") {
          text = relative.format(Math.round(seconds / units[i][1]), units[i][0]);
          break;
        }
      }
    }
    element.textContent = text;
    return element;
  }

  function button(label, action, className) {
    var element = document.createElement("button");
    element.type = "button";
    element.textContent = label;
    element.dataset.action = action;
    if (className) { element.className = className; }
    return element;
  }

  // Server-Sent Events: call onEvent(desktop) for each change, and onClassroom(kind) when
  // someone starts or stops watching one of the user's desktops ("watch"), a demo to one
  // of their classes begins or ends ("demo"), and whenever the stream (re)opens ("open");
  // EventSource reconnects.
  function events(onEvent, onClassroom) {
    var source = new EventSource("/api/events");
    source.addEventListener("desktop", function (event) { onEvent(JSON.parse(event.data)); });
    if (onClassroom) {
      ["watch", "demo", "open"].forEach(function (kind) {  // "open" after a reconnect: what was missed
        source.addEventListener(kind, function () { onClassroom(kind); });
      });
    }
    return source;
  }

  // A clock time ("10:14"), with the date before it when it is not today.
  function clockTime(iso) {
    var date = new Date(iso);
    var today = new Date().toDateString() === date.toDateString();
    return new Intl.DateTimeFormat(lang, today ? {hour: "numeric", minute: "2-digit"}
      : {dateStyle: "medium", timeStyle: "short"}).format(date);
  }

  // A link that opens a desktop (or a viewer) in a tab of its own, without an opener:
  // what a desktop serves must not script the page that opened it.
  function tabLink(text, href, className) {
    var link = document.createElement("a");
    link.className = className;
    link.href = href;
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = text;
    return link;
  }

  // The eye that marks "someone sees this screen" (decorative: the text says it).
  function eye() {
    var picture = document.createElement("img");
    picture.className = "eye";
    picture.src = "/static/icons/eye.svg";
    picture.alt = "";
    return picture;
  }

  // Send one file as the raw body of a PUT (what /api/upload/... take), with progress:
  // onProgress(fraction) while it goes. Resolves with the JSON answer; rejects with a text.
  function upload(path, file, onProgress) {
    return new Promise(function (resolve, reject) {
      var request = new XMLHttpRequest();
      request.open("PUT", path);
      request.setRequestHeader("X-CSRF-Token", csrf);
      request.setRequestHeader("Content-Type", "application/octet-stream");
      request.setRequestHeader("Accept", "application/json");
      request.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable && onProgress) { onProgress(event.loaded / event.total); }
      });
      request.addEventListener("load", function () {
        var body = {};
        try { body = JSON.parse(request.responseText); } catch (error) { /* not JSON: generic text */ }
        if (request.status >= 200 && request.status < 300) { resolve(body); } else { reject(new Error(errorText(body))); }
      });
      request.addEventListener("error", function () { reject(new Error(texts["error.generic"])); });
      request.send(file);
    });
  }

  // 1536 -> "1,5 KB": sizes as people read them (binary steps, the units they know).
  var number = new Intl.NumberFormat(lang, {maximumFractionDigits: 1});
  function size(bytes) {
    var units = ["B", "KB", "MB", "GB", "TB"];
    var index = 0;
    while (bytes >= 1024 && index < units.length - 1) { bytes /= 1024; index++; }
    return number.format(bytes) + " " + units[index];
  }

  function notice(text) { document.getElementById("notice").textContent = text || ""; }

  return {t: t, api: api, timeElement: timeElement, clockTime: clockTime, button: button, events: events,
          notice: notice, lang: lang, eye: eye, tabLink: tabLink, upload: upload, size: size};
})();
