"""What a signed-in user does through the API in tests: sign in (the flow itself, done with
requests, lives in scripts/devtools.py, which the benchmarks use too) and wait for a
desktop's status."""

from devtools import PASSWORDS, Client, sign_in, start_sign_in, submit, wait_for

__all__ = ["PASSWORDS", "Client", "Person", "sign_in", "start_sign_in", "submit", "wait_status"]


class Person(Client):
    """A signed-in browser of an account from a generated users file (Client knows only
    the demo accounts' passwords)."""

    def __init__(self, portal_url, username, password):
        super().__init__(portal_url, username, password=password)


def wait_status(client, desktop_type, wanted, timeout=60):
    """Wait until the client's desktop of `desktop_type` has status `wanted`; its JSON.
    A desktop that ends in "error" instead fails at once with its message."""
    def reached():
        body = client.get("/api/container/status", params={"desktop_type": desktop_type}).json()
        if body["status"] == "error" and wanted != "error":
            raise AssertionError("desktop failed: %s" % body["message"])
        return body if body["status"] == wanted else None
    return wait_for(reached, timeout, "%s of %s to be %s" % (client.username, desktop_type, wanted), 0.1)
