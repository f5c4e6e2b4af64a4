"""The scrubbers that keep OIDC codes, states, tokens and session ids out of logs."""

from iservdesk.log import scrub_headers, scrub_url


def test_scrub_url_hides_credentials_and_keeps_the_rest():
    url = "/authorize?code=abc&state=def&lang=de&session_id=xyz&id_token_hint=t"
    assert scrub_url(url) == "/authorize?code=[hidden]&state=[hidden]&lang=de&session_id=[hidden]&id_token_hint=[hidden]"


def test_scrub_url_without_query_is_unchanged():
    assert scrub_url("https://desk.example/desktop/max.muster-ubuntu-vscode/") == \
        "https://desk.example/desktop/max.muster-ubuntu-vscode/"


def test_scrub_url_parameter_names_are_case_insensitive():
    assert scrub_url("/x?Code=1&STATE=2") == "/x?Code=[hidden]&STATE=[hidden]"


def test_scrub_headers_hides_credentials():
    headers = {"Authorization": "Bearer abc", "Cookie": "iservdesk_session=s", "X-Session-ID": "s",
               "Accept": "text/html"}
    assert scrub_headers(headers) == {"Authorization": "[hidden]", "Cookie": "[hidden]",
                                      "X-Session-ID": "[hidden]", "Accept": "text/html"}
