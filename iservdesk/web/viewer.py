"""The portal's own viewer of a desktop, for people other than its owner.

An admin helping a student (full control) or, later, a teacher watching a class (view
only) never loads anything the desktop serves: the pages and scripts of a desktop are its
user's to control, and they would run with the viewer's portal rights. Instead the portal
serves this page and static/viewer.js from its own package, a small RFB client that talks
only to the desktop's WebSocket (/desktop/<name>/websockify, relayed by web/desktop.py
with the credentials the portal chose). See the README, "The portal's viewer", for the
wire contract and the servers it was checked against.

This module only renders the HTML document: who may see it, the headers it goes out with
and the WebSocket behind it are web/desktop.py's. The page loads nothing but /static/
files and carries no inline script or style (the portal's CSP forbids both) and no CSRF
token; what the script needs comes in data- attributes. View-only is decided here, by
the server: the script can be told to take control away (?view_only=1), never to grant
it.
"""

import html
import json
import urllib.parse

import bottle

from . import i18n

# The viewer's texts, one catalogue per language like i18n.CATALOGUES (a test checks that
# both have the same keys). "status.*" and "mode.view*" go to the script too.
TEXTS = {
    "de": {
        "title": "Desktop von {owner}",
        "home": "Übersicht",
        "language": "Sprache",
        "mode.full": "Volle Steuerung",
        "mode.full_hint": "Tastatur und Maus wirken auf diesen Desktop.",
        "mode.view": "Nur ansehen",
        "mode.view_hint": "Tastatur und Maus werden nicht übertragen.",
        "screen": "Bildschirm des Desktops {name}",
        "reconnect": "Neu verbinden",
        "status.connecting": "Verbinde …",
        "status.connected": "Verbunden",
        "status.closed": "Die Verbindung ist getrennt.",
        "status.unreachable": "Der Desktop ist nicht erreichbar. Läuft er noch?",
        "status.failed": "Fehler: {reason}",
    },
    "en": {
        "title": "Desktop of {owner}",
        "home": "Overview",
        "language": "Language",
        "mode.full": "Full control",
        "mode.full_hint": "Keyboard and mouse act on this desktop.",
        "mode.view": "View only",
        "mode.view_hint": "Keyboard and mouse are not sent.",
        "screen": "Screen of the desktop {name}",
        "reconnect": "Reconnect",
        "status.connecting": "Connecting …",
        "status.connected": "Connected",
        "status.closed": "The connection is closed.",
        "status.unreachable": "The desktop cannot be reached. Is it still running?",
        "status.failed": "Error: {reason}",
    },
}

PAGE = """<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – iservdesk ({host})</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/viewer.css">
<script src="/static/viewer.js" defer></script>
</head>
<body>
<header class="bar">
  <a class="home" href="/"><img src="/static/favicon.svg" alt="" width="24" height="24"> {home}</a>
  <h1 id="title">{title} <span class="desktop-name">{name}</span></h1>
  <p id="mode" class="mode {mode_class}" title="{mode_hint}">{mode}</p>
  <p id="status" role="status" aria-live="polite">{connecting}</p>
  <button id="reconnect" type="button" hidden>{reconnect}</button>
  <nav class="languages" aria-label="{language}">{languages}</nav>
</header>
<main id="viewer" data-websocket="{websocket}" data-view-only="{view_only}" data-texts="{texts}">
  <canvas id="screen" width="0" height="0" aria-label="{screen}"></canvas>
</main>
</body>
</html>
"""


def request_language():
    """The language of the current request (the switch's cookie, else Accept-Language),
    or the default outside of a request."""
    try:
        cookie = bottle.request.get_cookie(i18n.COOKIE)
        accept = bottle.request.headers.get("Accept-Language")
    except RuntimeError:  # no request context
        return i18n.DEFAULT
    return i18n.choose(cookie, accept)


def page(config, row, owner_name, view_only, language=None):
    """The whole HTML document of the viewer for desktop `row` (a db.Desktop: .name,
    .desktop_type) of the person `owner_name` (their display name).

    `view_only`: the script sends no keyboard or mouse input at all (the server should
    enforce it too, e.g. with KasmVNC's view-only user). `language`: "de" or "en"; None
    picks the request's. Pure apart from reading the request; never raises for odd names
    (everything is escaped)."""
    lang = language if language in TEXTS else request_language()
    texts = TEXTS[lang]
    here = "/desktop/%s/" % urllib.parse.quote(row.name, safe="")
    languages = "".join(
        '<a href="/lang/{code}?next={next}" lang="{code}" hreflang="{code}"{current}>{label}</a>'.format(
            code=code, next=urllib.parse.quote(here, safe=""), label=code.upper(),
            current=' aria-current="true"' if code == lang else "")
        for code in i18n.LANGUAGES)
    script_texts = {key.partition(".")[2]: value for key, value in texts.items()
                    if key.startswith("status.") or key.startswith("mode.view")}
    escape = html.escape
    return PAGE.format(
        lang=lang,
        title=escape(texts["title"].format(owner=owner_name)),
        host=escape(urllib.parse.urlsplit(config.public_url).netloc),
        home=escape(texts["home"]),
        name=escape(row.name),
        mode=escape(texts["mode.view" if view_only else "mode.full"]),
        mode_hint=escape(texts["mode.view_hint" if view_only else "mode.full_hint"]),
        mode_class="mode-view" if view_only else "mode-full",
        connecting=escape(texts["status.connecting"]),
        reconnect=escape(texts["reconnect"]),
        language=escape(texts["language"]),
        languages=languages,
        websocket=escape(here + "websockify"),
        view_only="true" if view_only else "false",
        texts=escape(json.dumps(script_texts, ensure_ascii=False)),
        screen=escape(texts["screen"].format(name=row.name)),
    )
