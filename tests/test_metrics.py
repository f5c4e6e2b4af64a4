"""GET /metrics: what it counts, in Prometheus text, and who may read it."""

import re

import requests

from flows import Client, wait_status
from proxying import open_ws


def sample(text, name, labels=""):
    match = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(match.group(1)) if match else None


def test_metrics_count_starts_websockets_bytes_and_sign_ins(signed_in_portal, demo_image, docker_client):
    portal, provider = signed_in_portal(METRICS_TOKEN="metrics-token-0123456789")
    anna = Client(portal.url, "anna.schmidt")
    anna.post("/api/container/start", params={"desktop_type": "demo"})
    wait_status(anna, "demo", "running")
    provider.misbehave("wrong-nonce")
    from flows import sign_in
    refused = sign_in(portal.url, "ben", "ben-pw")[2]
    assert refused.status_code == 401
    ws = open_ws(portal, "anna.schmidt-demo", anna.session_id)
    assert ws.recv().startswith(b"RFB")
    during = requests.get(portal.url + "/metrics", timeout=30).text
    ws.close()

    assert "# TYPE iservdesk_desktop_starts_total counter" in during
    assert sample(during, "iservdesk_desktop_starts_total", '{type="demo"}') == 1
    assert sample(during, "iservdesk_desktop_start_seconds_count") == 1
    assert sample(during, "iservdesk_desktop_start_seconds_bucket", '{le="+Inf"}') == 1
    assert sample(during, "iservdesk_websockets_open") == 1
    assert sample(during, "iservdesk_proxy_bytes_total", '{direction="to_browser"}') >= 12
    assert sample(during, "iservdesk_signins_total") == 1
    assert sample(during, "iservdesk_signin_failures_total", '{reason="id_token_invalid"}') == 1
    assert sample(during, "iservdesk_desktops", '{state="running",type="demo"}') == 1
    assert sample(during, "iservdesk_desktops", '{state="running",type="tiny"}') == 0
    assert sample(during, "iservdesk_sessions") == 1


def test_metrics_are_refused_through_a_proxy_without_the_token(signed_in_portal):
    portal, _ = signed_in_portal(METRICS_TOKEN="metrics-token-0123456789")
    proxied = requests.get(portal.url + "/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=30)
    assert proxied.status_code == 403
    assert proxied.json()["error"] == "metrics_forbidden"
    wrong = requests.get(portal.url + "/metrics", timeout=30,
                         headers={"X-Forwarded-For": "203.0.113.9", "Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    token = requests.get(portal.url + "/metrics", timeout=30,
                         headers={"X-Forwarded-For": "203.0.113.9",
                                  "Authorization": "Bearer metrics-token-0123456789"})
    assert token.status_code == 200
    assert token.headers["Content-Type"].startswith("text/plain; version=0.0.4")
