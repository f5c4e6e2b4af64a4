"""The Docker engine, seen through the docker SDK: the only module importing `docker`.

Docker errors and an unreachable engine (which the SDK surfaces as a requests
ConnectionError, not a docker error) become DesktopError here.
"""

import logging

import docker
import docker.errors
import requests.exceptions

from ..errors import DesktopError

log = logging.getLogger(__name__)

# A fixed API version: with version=None the SDK asks the engine at construction, which
# fails while the engine is down. 1.41 is docker.io 20.10 (bookworm); trixie's 26.1 accepts it.
API_VERSION = "1.41"
LABEL_PREFIX = "de.iservdesk."


class Engine:
    """A connection to one Docker engine. Cheap to create; connects on each call."""

    def __init__(self, url, timeout=10):
        self.url = url
        self.client = docker.DockerClient(base_url=url, version=API_VERSION, timeout=timeout)

    def ping(self):
        """Return the engine's version string; raise DesktopError when it does not answer."""
        try:
            return self.client.version()["Version"]
        except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
            raise DesktopError("The Docker engine at %s does not answer: %s"
                               % (self.url, _reason(error)), code="docker_unreachable") from None

    def close(self):
        self.client.close()


def _reason(error):
    """A one-line reason without the SDK's nested exception repr soup."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "No such file or directory" in text or "FileNotFoundError" in text:
        return "socket not found"
    if "Connection refused" in text or "ConnectionRefused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text[:200]
