"""The shipped nginx site (nginx/iservdesk.conf), rendered for a test and run by real nginx
(scripts/devtools.py's Site: each substitution must hit, so the shipped file cannot drift
from these tests); a self-signed certificate for 127.0.0.1.
"""

import hashlib
import io
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import warnings

import pytest
import requests
import websocket

from conftest import CLIENT_ID, CLIENT_SECRET, ROOT, failed, free_port, wait_for
from devtools import SITE, NginxUnavailable, Site, nginx_binary
from flows import Client


@pytest.fixture
def nginx():
    """The nginx binary; a test that runs nginx fails at once, saying what is missing."""
    try:
        return nginx_binary()
    except NginxUnavailable as error:
        pytest.fail(str(error), pytrace=False)


def test_rendered_site_passes_nginx_t(nginx, tmp_path):
    site = Site(str(tmp_path))
    result = site.test()
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def ssl_setup_commands(section):
    """The shell code blocks of SSL_SETUP.md's section `section` (a heading's start; None:
    the introduction)."""
    with open(os.path.join(ROOT, "SSL_SETUP.md")) as stream:
        text = stream.read()
    part = text.split("\n## " + section, 1)[1] if section else text
    part = part.split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", part, re.S)


def test_ssl_setups_trial_certificate_steps_give_a_valid_site_without_hsts(nginx, tmp_path):
    # SSL_SETUP.md's own commands, run on a copy of the site: the host name, then section 3's
    # sed (certificate paths, HSTS commented out). Only the certificate's location differs.
    site_copy = str(tmp_path / "iservdesk.conf")
    shutil.copy(SITE, site_copy)
    rename = [line for line in ssl_setup_commands(None)[0].splitlines() if line.startswith("sed ")]
    trial = [block for block in ssl_setup_commands("3.") if block.startswith("openssl")][0]
    edit = trial[trial.index("sed -i"):trial.index("ln -sf")]
    for command in rename + [edit]:
        command = command.replace("/etc/nginx/sites-available/iservdesk", site_copy)
        subprocess.run(["sh", "-c", command], check=True, timeout=30)
    with open(site_copy) as stream:
        text = stream.read()
    assert "\n    # add_header Strict-Transport-Security" in text
    assert "\n    add_header Strict-Transport-Security" not in text
    folder = tmp_path / "nginx"
    folder.mkdir()
    site = Site(str(folder), text=text, host="desk.your-school.de",
                certificate=("/etc/ssl/certs/iservdesk-trial.pem", "/etc/ssl/private/iservdesk-trial.key"))
    result = site.test()
    assert result.returncode == 0, result.stderr


def test_ssl_setup_uses_the_sites_paths():
    with open(SITE) as stream:
        site = stream.read()
    with open(os.path.join(ROOT, "SSL_SETUP.md")) as stream:
        guide = stream.read()
    for path in ("/etc/letsencrypt/live/desk.school.example/fullchain.pem",
                 "/etc/letsencrypt/live/desk.school.example/privkey.pem"):
        assert path in site
        assert path.replace("desk.school.example", "desk.your-school.de") in guide
    acme = "location /.well-known/acme-challenge/ {\n        root /var/www/letsencrypt;\n    }"
    assert acme in site and acme in guide
    assert "certbot certonly --webroot -w /var/www/letsencrypt" in guide


def test_a_broken_site_fails_nginx_t(nginx, tmp_path):
    # The check above can fail: a typo in the site makes nginx -t say so.
    with open(SITE) as stream:
        text = stream.read().replace("proxy_buffering off;", "proxy_buffering maybe;", 1)
    result = Site(str(tmp_path), text=text).test()
    assert result.returncode == 1
    assert "proxy_buffering" in result.stderr


@pytest.fixture
def behind_nginx(portal, idp, docker_client, demo_image, nginx, tmp_path, request):
    """A portal whose PUBLIC_URL is nginx's https address, nginx in front, and a browser
    session (trusting the test certificate) signed in as anna.schmidt -> (site, browser, csrf)."""
    https_port, listen = free_port(), "127.0.0.1:%d" % free_port()
    public_url = "https://127.0.0.1:%d" % https_port
    provider = idp(clients=[(CLIENT_ID, CLIENT_SECRET, "client_secret_basic", public_url + "/authorize")])
    portal(LISTEN=listen, PUBLIC_URL=public_url, OAUTH_ISSUER=provider.issuer,
           OAUTH_CLIENT_ID=CLIENT_ID, OAUTH_CLIENT_SECRET=CLIENT_SECRET)
    folder = tmp_path / "nginx"
    folder.mkdir()
    site = Site(str(folder), upstream=listen, https_port=https_port)
    site.start()
    try:
        session = requests.Session()
        session.verify = site.cert
        # requests lets $REQUESTS_CA_BUNDLE override Session.verify unless trust_env is off.
        session.trust_env = False
        anna = Client(public_url, "anna.schmidt", session=session)
        yield site, anna.browser, anna.csrf
    finally:
        site.stop()
        if failed(request):
            print("\n----- nginx error log -----\n%s" % site.log()[-5000:])


def test_websocket_reaches_a_desktop_through_nginx_and_the_portal(behind_nginx):
    site, browser, csrf = behind_nginx
    answer = browser.post(site.url + "/api/container/start", params={"desktop_type": "demo"},
                          headers={"X-CSRF-Token": csrf}, timeout=60)
    assert answer.status_code in (200, 202), answer.text

    def running():
        body = browser.get(site.url + "/api/container/status", params={"desktop_type": "demo"},
                           timeout=30).json()
        assert body["status"] != "error", body
        return body["status"] == "running"
    wait_for(running, 60, "the demo desktop behind nginx", 0.1)

    ws = websocket.create_connection(
        "wss://127.0.0.1:%d/desktop/anna.schmidt-demo/websockify" % site.https_port,
        sslopt={"ca_certs": site.cert}, subprotocols=["binary"], origin=site.url,
        cookie="__Host-iservdesk_session=%s" % browser.cookies["__Host-iservdesk_session"], timeout=30)
    try:
        assert ws.recv().startswith(b"RFB 003.008")
        ws.send_binary(b"RFB 003.008\n")
        assert ws.recv()  # security types: bytes flow both ways through both proxies
    finally:
        ws.close()
    page = browser.get(site.url + "/desktop/anna.schmidt-demo/vnc.html", timeout=30)
    assert page.status_code == 200 and "noVNC" in page.text


def test_https_answers_carry_hsts_and_plain_http_only_redirects(behind_nginx):
    site, browser, _ = behind_nginx
    health = browser.get(site.url + "/healthz", timeout=30)
    assert health.status_code == 200
    assert health.headers["Strict-Transport-Security"] == "max-age=63072000"
    assert "nginx/" not in health.headers.get("Server", "")  # server_tokens off

    plain = requests.get("http://127.0.0.1:%d/desktop/x/?a=1" % site.http_port, allow_redirects=False,
                         timeout=30)
    assert plain.status_code == 301
    assert plain.headers["Location"] == "https://127.0.0.1/desktop/x/?a=1"
    # Let's Encrypt's HTTP challenge is answered from the webroot, not redirected.
    with open(os.path.join(site.webroot, ".well-known", "acme-challenge", "token-123"), "w") as stream:
        stream.write("token-123.key")
    challenge = requests.get("http://127.0.0.1:%d/.well-known/acme-challenge/token-123" % site.http_port,
                             allow_redirects=False, timeout=30)
    assert (challenge.status_code, challenge.text) == (200, "token-123.key")


def test_forwarded_headers_cannot_steer_the_portals_redirects(behind_nginx):
    site, browser, _ = behind_nginx
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http",
              "Forwarded": "host=evil.example"}
    stranger = requests.Session()
    stranger.verify, stranger.trust_env = site.cert, False
    answer = stranger.get(site.url + "/desktop/anna.schmidt-demo/", allow_redirects=False, timeout=30,
                          headers=forged)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(site.url + "/login?next=")


def test_live_events_pass_nginx_at_once(behind_nginx):
    site, browser, _ = behind_nginx
    started = time.monotonic()
    with browser.get(site.url + "/api/events", stream=True, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        first = next(response.iter_lines(decode_unicode=True))
    assert first == "retry: 3000"
    assert time.monotonic() - started < 5  # not held back in a buffer


def test_tls_offers_only_modern_protocols(behind_nginx):
    site, _, _ = behind_nginx
    context = ssl.create_default_context(cafile=site.cert)
    with socket.create_connection(("127.0.0.1", site.https_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # an outdated client, on purpose
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", site.https_port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError) as refused:
            old.wrap_socket(raw, server_hostname="127.0.0.1").do_handshake()
    assert "PROTOCOL_VERSION" in str(refused.value)  # nginx's alert, not our client giving up


def test_a_file_larger_than_nginxs_body_limit_streams_through_to_a_home_and_back(behind_nginx):
    """/api/upload/ passes bodies of any size (the portal applies UPLOAD_MAX_SIZE) straight
    through; the rest of the site keeps nginx's 10m limit."""
    site, browser, csrf = behind_nginx
    assert browser.post(site.url + "/api/container/start", params={"desktop_type": "tiny"},
                        headers={"X-CSRF-Token": csrf}, timeout=60).status_code in (200, 202)
    wait_for(lambda: browser.get(site.url + "/api/container/status", params={"desktop_type": "tiny"},
                                 timeout=30).json()["status"] == "running", 60, "the tiny desktop", 0.1)
    data = os.urandom(12 * 1024 * 1024)
    answer = browser.put(site.url + "/api/upload/home", params={"desktop_type": "tiny", "name": "gross.bin"},
                         data=io.BytesIO(data), headers={"X-CSRF-Token": csrf}, timeout=120)
    assert answer.status_code == 200, answer.text
    back = browser.get(site.url + "/api/files/download", params={"desktop_type": "tiny", "path": "Uploads/gross.bin"},
                       timeout=120)
    assert back.status_code == 200 and hashlib.sha256(back.content).digest() == hashlib.sha256(data).digest()
    refused = browser.post(site.url + "/api/container/keep", params={"desktop_type": "tiny"}, data=data[:11 * 1024 * 1024],
                           headers={"X-CSRF-Token": csrf}, timeout=60)
    assert refused.status_code == 413  # nginx's own limit, elsewhere
