"""The exception tree: each error carries its HTTP status and a message safe to show.

Routes raise these; one Bottle plugin (web/errors.py) renders them, as JSON under the API
and as a page elsewhere. Third-party exceptions are translated into these where the
library is imported, so nothing else needs to know about docker or authlib errors.
"""


class IServDeskError(Exception):
    status = 500
    code = "internal_error"
    public_message = "Something went wrong on the server."

    def __init__(self, public_message=None, *, code=None, status=None):
        super().__init__(public_message or self.public_message)
        if public_message:
            self.public_message = public_message
        if code:
            self.code = code
        if status:
            self.status = status


class BadRequest(IServDeskError):
    status = 400
    code = "bad_request"
    public_message = "The request is not valid."


class NotFound(IServDeskError):
    status = 404
    code = "not_found"
    public_message = "Not found."


class DesktopError(IServDeskError):
    """The Docker engine refused or could not be reached."""
    status = 503
    code = "docker_unavailable"
    public_message = "The desktop service is not available right now."
