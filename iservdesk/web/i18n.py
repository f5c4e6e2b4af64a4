"""German and English: every text of the web interface, one catalogue per language.

The language comes from the `iservdesk_lang` cookie (set by the switch), else from
Accept-Language, else German. A test fails when a key is missing in one catalogue.
"""

LANGUAGES = ("de", "en")
DEFAULT = "de"
COOKIE = "iservdesk_lang"

CATALOGUES = {
    "de": {
        "app.title": "Desktops",
        "app.tagline": "Dein Computer im Browser – mit deinem IServ-Konto.",
        "login.button": "Mit IServ anmelden",
        "login.hint": "Melde dich mit deinem IServ-Konto an, um deine Desktops zu sehen.",
        "header.signed_in_as": "Angemeldet als",
        "header.logout": "Abmelden",
        "header.admin": "Verwaltung",
        "header.language": "Sprache",
        "header.home": "Übersicht",
        "desktops.heading": "Deine Desktops",
        "desktops.none": "Für dein Konto ist kein Desktop freigegeben.",
        "status.absent": "Noch nicht gestartet",
        "status.new": "Startet …",
        "status.pulling": "Wird vorbereitet …",
        "status.starting": "Startet …",
        "status.running": "Läuft",
        "status.stopped": "Gestoppt",
        "status.removed": "Entfernt",
        "status.error": "Fehler",
        "card.last_access": "Zuletzt benutzt",
        "card.never": "noch nie",
        "action.start": "Starten",
        "action.open": "Öffnen",
        "action.stop": "Stoppen",
        "action.remove": "Entfernen",
        "action.retry": "Nochmal versuchen",
        "confirm.remove": "Desktop „{name}“ entfernen? Deine Dateien im Home-Ordner bleiben erhalten.",
        "confirm.stop_all": "Wirklich alle {count} laufenden Desktops stoppen?",
        "progress.pulling": "Wird vorbereitet: {percent} %",
        "progress.starting": "Dein Desktop startet …",
        "ready": "Dein Desktop ist bereit.",
        "error.generic": "Das hat nicht geklappt. Bitte versuche es gleich nochmal.",
        "error.too_many_desktops": "Gerade sind alle Desktops belegt. Bitte versuche es in ein paar Minuten nochmal.",
        "error.no_free_port": "Der Server hat gerade keinen Platz für einen weiteren Desktop. Bitte sag deiner Lehrkraft oder der IT Bescheid.",
        "error.docker_unreachable": "Der Desktop-Dienst ist gerade nicht erreichbar. Bitte versuche es gleich nochmal.",
        "error.pull_failed": "Der Desktop konnte nicht vorbereitet werden. Bitte sag der IT Bescheid.",
        "error.start_failed": "Der Desktop ist beim Starten abgestürzt. Bitte versuche es nochmal.",
        "error.start_timeout": "Der Desktop hat zu lange zum Starten gebraucht. Bitte versuche es nochmal.",
        "error.unauthenticated": "Du bist nicht mehr angemeldet. Bitte lade die Seite neu.",
        "error.csrf_failed": "Bitte lade die Seite neu und versuche es nochmal.",
        "error.forbidden_title": "Kein Zugriff",
        "error.forbidden_text": "Diese Seite ist nur für Administratorinnen und Administratoren.",
        "admin.heading": "Verwaltung",
        "admin.total": "Desktops",
        "admin.running": "Laufen",
        "admin.active_users": "Aktive Personen",
        "admin.filter": "Filtern",
        "admin.filter_placeholder": "Name, Typ oder Status",
        "admin.stop_all": "Alle stoppen",
        "admin.owner": "Person",
        "admin.type": "Typ",
        "admin.status": "Status",
        "admin.created": "Erstellt",
        "admin.last_access": "Zuletzt benutzt",
        "admin.port": "Port",
        "admin.actions": "Aktionen",
        "admin.empty": "Keine Desktops.",
        "admin.audit": "Letzte Aktionen",
        "admin.audit_at": "Zeit",
        "admin.audit_actor": "Wer",
        "admin.audit_action": "Was",
        "admin.audit_target": "Desktop",
        "admin.stopped_count": "{count} Desktops gestoppt.",
        "admin.homes": "Home-Ordner",
        "admin.homes_intro": "Ein Home-Ordner gehört der Person, die ihn angelegt hat (ihrer IServ-ID), nicht "
                             "ihrem Kontonamen. Bekommt eine neue Person einen alten Kontonamen, erhält sie "
                             "einen eigenen Ordner. Aufbewahrt heißt: Kein Desktop der Person benutzt ihn mehr, oder "
                             "ihr Kontoname gehört inzwischen jemand anderem. Die Dateien bleiben, bis du das "
                             "Volume mit docker volume rm entfernst.",
        "admin.home_volume": "Volume",
        "admin.home_desktop": "Desktop",
        "admin.home_in_use": "In Benutzung",
        "admin.home_kept": "Aufbewahrt",
        "admin.home_reused": "Kontoname gehört jetzt einer anderen Person",
        "admin.home_unknown_owner": "Person unbekannt",
        "admin.homes_empty": "Keine Home-Ordner.",
        "error.not_found_title": "Nicht gefunden",
        "error.not_found_text": "Diese Seite gibt es hier nicht.",
        "error.class_forbidden_text": "Diese Klasse gehört nicht zu deinen Klassen. Klassenseiten sehen nur "
                                      "Lehrkräfte der Klasse und die Verwaltung.",
        "class.title": "Klasse {group}",
        "class.label": "Klasse",
        "class.who_appears": "Nur wer sich schon einmal angemeldet hat, erscheint hier.",
        "class.watch_is_open": "Zuschauen heißt nur ansehen, nicht steuern. Die Schülerin oder der Schüler sieht "
                               "sofort, dass du zuschaust oder die kleinen Bilder hier siehst, und beides wird "
                               "protokolliert (wer, wem, wann).",
        "class.watch_off": "Zuschauen ist an dieser Schule ausgeschaltet.",
        "class.watch": "Zuschauen",
        "class.stop_all": "Alle Desktops der Klasse stoppen",
        "class.confirm_stop_all": "Die {count} laufenden Desktops dieser Klasse stoppen? Die Dateien bleiben erhalten.",
        "class.nothing_to_stop": "In dieser Klasse läuft gerade kein Desktop.",
        "class.stopped": "Gestoppt: {count} (die Dateien bleiben erhalten).",
        "class.thumbnail_alt": "Bildschirm von {name}",
        "class.watch_label": "{name} zuschauen ({type})",
        "class.last_login": "Zuletzt angemeldet",
        "class.no_desktop": "Noch kein Desktop.",
        "class.empty": "Aus dieser Klasse hat sich noch niemand angemeldet.",
        "classes.heading": "Meine Klassen",
        "classes.members": "Mitglieder: {count}",
        "classes.none": "Du bist in keiner Klasse. Klassen sind die IServ-Gruppen, in denen du Mitglied bist.",
        "watching.now": "{watcher} sieht deinen Bildschirm seit {time}",
        "watching.thumbnail": "{watcher} sieht seit {time} ein kleines Bild deines Bildschirms auf der Klassenseite",
        "watching.view_only": "Zuschauen heißt nur ansehen: Niemand außer dir kann tippen oder klicken.",
        "history.heading": "Wer hat zugeschaut (30 Tage)",
        "history.item": "{watcher} hat {desktop} angesehen: {from} bis {to}",
        "history.ongoing": "jetzt",
    },
    "en": {
        "app.title": "Desktops",
        "app.tagline": "Your computer in the browser – with your IServ account.",
        "login.button": "Sign in with IServ",
        "login.hint": "Sign in with your IServ account to see your desktops.",
        "header.signed_in_as": "Signed in as",
        "header.logout": "Sign out",
        "header.admin": "Administration",
        "header.language": "Language",
        "header.home": "Overview",
        "desktops.heading": "Your desktops",
        "desktops.none": "No desktop is available for your account.",
        "status.absent": "Not started yet",
        "status.new": "Starting …",
        "status.pulling": "Preparing …",
        "status.starting": "Starting …",
        "status.running": "Running",
        "status.stopped": "Stopped",
        "status.removed": "Removed",
        "status.error": "Error",
        "card.last_access": "Last used",
        "card.never": "never",
        "action.start": "Start",
        "action.open": "Open",
        "action.stop": "Stop",
        "action.remove": "Remove",
        "action.retry": "Try again",
        "confirm.remove": "Remove the desktop “{name}”? The files in your home folder are kept.",
        "confirm.stop_all": "Really stop all {count} running desktops?",
        "progress.pulling": "Preparing: {percent} %",
        "progress.starting": "Your desktop is starting …",
        "ready": "Your desktop is ready.",
        "error.generic": "That did not work. Please try again in a moment.",
        "error.too_many_desktops": "All desktops are in use right now. Please try again in a few minutes.",
        "error.no_free_port": "The server has no room for another desktop right now. Please tell your teacher or IT.",
        "error.docker_unreachable": "The desktop service cannot be reached right now. Please try again in a moment.",
        "error.pull_failed": "The desktop could not be prepared. Please tell IT.",
        "error.start_failed": "The desktop crashed while starting. Please try again.",
        "error.start_timeout": "The desktop took too long to start. Please try again.",
        "error.unauthenticated": "You are no longer signed in. Please reload the page.",
        "error.csrf_failed": "Please reload the page and try again.",
        "error.forbidden_title": "No access",
        "error.forbidden_text": "This page is for administrators only.",
        "admin.heading": "Administration",
        "admin.total": "Desktops",
        "admin.running": "Running",
        "admin.active_users": "Active people",
        "admin.filter": "Filter",
        "admin.filter_placeholder": "Name, type or status",
        "admin.stop_all": "Stop all",
        "admin.owner": "Person",
        "admin.type": "Type",
        "admin.status": "Status",
        "admin.created": "Created",
        "admin.last_access": "Last used",
        "admin.port": "Port",
        "admin.actions": "Actions",
        "admin.empty": "No desktops.",
        "admin.audit": "Recent actions",
        "admin.audit_at": "When",
        "admin.audit_actor": "Who",
        "admin.audit_action": "What",
        "admin.audit_target": "Desktop",
        "admin.stopped_count": "{count} desktops stopped.",
        "admin.homes": "Home folders",
        "admin.homes_intro": "A home folder belongs to the person who made it (their IServ id), not to "
                             "their account name. A new person who gets an old account name gets a folder "
                             "of their own. Kept means: no desktop of its person uses it any more, or the person's "
                             "account name now belongs to someone else. The files stay until you remove the "
                             "volume with docker volume rm.",
        "admin.home_volume": "Volume",
        "admin.home_desktop": "Desktop",
        "admin.home_in_use": "In use",
        "admin.home_kept": "Kept",
        "admin.home_reused": "Account name now belongs to someone else",
        "admin.home_unknown_owner": "Owner unknown",
        "admin.homes_empty": "No home folders.",
        "error.not_found_title": "Not found",
        "error.not_found_text": "There is no such page here.",
        "error.class_forbidden_text": "This is not one of your classes. Class pages are for the class's "
                                      "teachers and administrators only.",
        "class.title": "Class {group}",
        "class.label": "Class",
        "class.who_appears": "Only people who have signed in at least once appear here.",
        "class.watch_is_open": "Watching means looking only, not controlling. The student sees at once that you "
                               "are watching or seeing the small pictures here, and both are logged (who, whom, "
                               "when).",
        "class.watch_off": "Watching is switched off at this school.",
        "class.watch": "Watch",
        "class.stop_all": "Stop all desktops of the class",
        "class.confirm_stop_all": "Stop the {count} running desktops of this class? Their files are kept.",
        "class.nothing_to_stop": "No desktop of this class is running right now.",
        "class.stopped": "Stopped: {count} (the files are kept).",
        "class.thumbnail_alt": "Screen of {name}",
        "class.watch_label": "Watch {name} ({type})",
        "class.last_login": "Last signed in",
        "class.no_desktop": "No desktop yet.",
        "class.empty": "Nobody from this class has signed in yet.",
        "classes.heading": "My classes",
        "classes.members": "Members: {count}",
        "classes.none": "You are in no class. Classes are the IServ groups you are a member of.",
        "watching.now": "{watcher} is watching your screen since {time}",
        "watching.thumbnail": "{watcher} sees a small picture of your screen on the class page since {time}",
        "watching.view_only": "Watching means looking only: nobody but you can type or click.",
        "history.heading": "Who watched (30 days)",
        "history.item": "{watcher} watched {desktop}: {from} to {to}",
        "history.ongoing": "now",
    },
}


def choose(cookie, accept_language):
    """The language for a request: the remembered choice, else the browser's preference."""
    if cookie in LANGUAGES:
        return cookie
    weighted = []
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        weighted.append((quality, tag.strip().lower().split("-")[0]))
    for _, language in sorted(weighted, key=lambda item: -item[0]):
        if language in LANGUAGES:
            return language
    return DEFAULT


def texts(language):
    return CATALOGUES.get(language, CATALOGUES[DEFAULT])
