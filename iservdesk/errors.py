"""The exception tree: every error iservdesk raises to a person, with its HTTP status, a code
that means one thing, a message safe to show, and a detail for the log.

Routes raise these; one Bottle plugin (web/errors.py) renders them, as JSON under the API
and as a page elsewhere, and logs the detail of server-side failures. Third-party
exceptions are translated into these where the library is imported (docker errors in
desktops/docker.py, Authlib and HTTP errors in oidc.py, peewee errors in db.py), so
nothing else needs to know about them. The public message never carries a host name,
socket path or other internal detail: that goes into `detail`.
"""


class IServDeskError(Exception):
    status = 500
    code = "internal_error"
    public_message = "Something went wrong on the server."

    def __init__(self, public_message=None, *, code=None, status=None, detail=None):
        super().__init__(detail or public_message or self.public_message)
        if public_message:
            self.public_message = public_message
        if code:
            self.code = code
        if status:
            self.status = status
        self.detail = detail or self.public_message


class BadRequest(IServDeskError):
    status = 400
    code = "bad_request"
    public_message = "The request is not valid."


class Unauthenticated(IServDeskError):
    status = 401
    code = "unauthenticated"
    public_message = "Please sign in."


class Forbidden(IServDeskError):
    status = 403
    code = "forbidden"
    public_message = "You are not allowed to do this."


class NotFound(IServDeskError):
    status = 404
    code = "not_found"
    public_message = "Not found."


class Conflict(IServDeskError):
    status = 409
    code = "conflict"
    public_message = "That cannot be done in the current state."


class TooMany(IServDeskError):
    status = 429
    code = "too_many"
    public_message = "Too many at once. Please try again in a moment."


class BadGateway(IServDeskError):
    """Something behind the portal (a desktop, the identity provider) answered badly."""
    status = 502
    code = "bad_gateway"
    public_message = "A service behind iservdesk did not answer properly."


# -- sign-in (oidc.py) --

class LoginError(IServDeskError):
    status = 400
    code = "login_failed"
    public_message = "Signing in did not work. Please try again."


class ProviderUnreachable(LoginError):
    status = 502
    code = "provider_unreachable"
    public_message = ("The school's sign-in service (IServ) cannot be reached right now. "
                      "Please try again in a few minutes; if it keeps happening, tell your IT admin.")


class IssuerMismatch(ProviderUnreachable):
    # A subclass of ProviderUnreachable: every caller that copes with a provider it cannot
    # use (logout without end-session, `iservdesk check`) copes with this one too.
    code = "issuer_mismatch"
    public_message = ("The school's sign-in service (IServ) is not the one this portal is set up "
                      "for, so signing in is refused. Please tell your IT admin.")


class TokenInvalid(LoginError):
    status = 401
    code = "id_token_invalid"
    public_message = ("IServ's answer could not be verified, so you were not signed in. "
                      "Please try again; if it keeps happening, tell your IT admin.")


# -- the database (db.py) --

class DatabaseError(IServDeskError):
    """The database cannot be opened or used (a missing folder, an unreadable, foreign or
    locked file), or has a schema this version does not know.

    `reason` says what, without the file's name (for `iservdesk check`, which names it
    itself); str() and the detail name the setting and file where the reason does not.
    """
    status = 503
    code = "database_unavailable"
    public_message = "The portal's database is not available right now. Please try again in a moment."

    def __init__(self, reason, path=None):
        super().__init__(detail="DATABASE_URI: %s: %s" % (path, reason) if path else reason)
        self.reason = reason


# -- desktops --

class DesktopNotFound(NotFound):
    code = "desktop_not_found"
    public_message = "There is no such desktop."


class DesktopNotRunning(Conflict):
    code = "desktop_not_running"
    public_message = "The desktop is not running."


class TooManyDesktops(TooMany):
    code = "too_many_desktops"
    public_message = ("All desktops of this server are in use right now. Please try again in a "
                      "few minutes, or stop a desktop you no longer need.")


class NoRoom(TooMany):
    """On a Swarm: no node that may run the desktop has the memory it reserves left."""
    code = "no_room"
    public_message = TooManyDesktops.public_message


class NameTaken(Conflict):
    """A desktop or container name belongs to another account."""
    code = "name_taken"
    public_message = "The desktop's name is taken by another account. Please tell your IT admin."


class HomeTaken(Conflict):
    code = "home_taken"
    public_message = ("Your home folder could not be set up because its name is taken by another "
                      "account. Please tell your IT admin.")


class DesktopError(IServDeskError):
    """The desktops' engine (Docker) failed, refused, or could not be reached; or a desktop
    did not become ready. The detail says which, for the log."""
    status = 503
    code = "engine_unavailable"
    public_message = "The desktop service is not available right now. Please try again later."


class EngineUnreachable(DesktopError):
    code = "engine_unreachable"


class EngineRefused(DesktopError):
    code = "engine_refused"


class ContainerTaken(DesktopError):
    """A container of that name exists, but it is not this desktop's."""
    code = "container_taken"
    public_message = ("A container of this desktop's name belongs to another account. Please tell your "
                      "IT admin.")


class NoFreePort(DesktopError):
    code = "no_free_port"
    public_message = ("The server has no free port for another desktop. Please tell your IT "
                      "admin (HOST_PORT_RANGE is full).")


class PortTaken(DesktopError):
    """The port a stopped container publishes stays taken by something else."""
    code = "port_taken"


class PullFailed(DesktopError):
    code = "pull_failed"
    public_message = "The desktop's image could not be fetched. Please tell your IT admin."


class StartFailed(DesktopError):
    code = "start_failed"
    public_message = "The desktop stopped while it was starting. Please try again."


class StartTimeout(DesktopError):
    code = "start_timeout"
    public_message = "The desktop did not become ready in time. Please try again."


class NodeUnavailable(DesktopError):
    """On a Swarm: the node that keeps the desktop's home is down or drained."""
    code = "node_unavailable"
    public_message = ("The server that keeps this desktop's files is not available right now. Please try "
                      "again later, or tell your IT admin.")


class HomesElsewhere(DesktopError):
    """On a Swarm: the homes are on the nodes, where the portal cannot open them."""
    code = "homes_elsewhere"
    public_message = ("Files cannot be moved in or out here: the desktops of this school run on several "
                      "servers. Use the desktop itself, e.g. its browser, to move files.")


class NetworkUnsafe(DesktopError):
    code = "network_unsafe"
    public_message = "The network for desktops is not set up safely. Please tell your IT admin."


class DesktopUnreachable(BadGateway):
    code = "desktop_unreachable"
    public_message = "The desktop does not answer."
