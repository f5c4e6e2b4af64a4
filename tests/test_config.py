"""Settings: parsing, precedence, one-line errors, and the docs generated from SCHEMA."""

import os
import re

import pytest

from conftest import ROOT, SECRET_KEY, write_config
from iservdesk import config


def load(tmp_path, environ=None, **overrides):
    return config.load(write_config(tmp_path / "t.env", **overrides), environ=environ or {})


def error_of(tmp_path, environ=None, **overrides):
    with pytest.raises(config.ConfigError) as caught:
        load(tmp_path, environ, **overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_complete_file_loads_with_defaults(tmp_path):
    loaded = load(tmp_path, DESKTOPS_FILE=None, CONTAINER_PREFIX=None, DESKTOP_READY_TIMEOUT=None)
    assert loaded.listen == ("127.0.0.1", 8080)
    assert loaded.host_port_range == range(7000, 8001)
    assert loaded.kasm_container_port == 6901
    assert loaded.kasm_image == "kasmweb/ubuntu-focal-desktop:1.15.0"
    assert loaded.desktops_file == "/etc/iservdesk/desktops.toml"
    assert loaded.container_prefix == "iservdesk"
    assert loaded.max_desktops == 30
    assert loaded.oauth_redirect_uri == "http://127.0.0.1:8080/authorize"
    assert loaded.secret_key == SECRET_KEY


def test_environment_wins_over_file(tmp_path):
    loaded = load(tmp_path, environ={"LISTEN": "127.0.0.1:9999", "UNRELATED": "x"})
    assert loaded.listen == ("127.0.0.1", 9999)


def test_docker_host_url_is_the_host_only_form_of_public_url(tmp_path):
    loaded = load(tmp_path, PUBLIC_URL=None, DOCKER_HOST_URL="desk.school.example")
    assert loaded.public_url == "https://desk.school.example"
    assert loaded.oauth_redirect_uri == "https://desk.school.example/authorize"


def test_public_url_trailing_slash_is_dropped(tmp_path):
    assert load(tmp_path, PUBLIC_URL="https://desk.example/").public_url == "https://desk.example"


def test_missing_required_value_names_the_variable(tmp_path):
    assert error_of(tmp_path, OAUTH_CLIENT_ID=None) == "OAUTH_CLIENT_ID: missing, it must be set"
    assert error_of(tmp_path, PUBLIC_URL=None).startswith("PUBLIC_URL: missing")


def test_unknown_variable_in_file_is_refused(tmp_path):
    message = error_of(tmp_path, HOST_PORT_RANGES="7000-8000")
    assert message.startswith("HOST_PORT_RANGES: unknown setting")


@pytest.mark.parametrize("value", ["8000-7000", "7000", "a-b", "0-10", "7000-70000"])
def test_bad_port_range_is_refused(tmp_path, value):
    assert error_of(tmp_path, HOST_PORT_RANGE=value).startswith("HOST_PORT_RANGE: %r is not valid" % value)


@pytest.mark.parametrize("name,value", [
    ("LISTEN", "8080"), ("LISTEN", "example.com:80"), ("PUBLIC_URL", "desk.example"),
    ("DATABASE_URI", "postgres://x/y"), ("KASM_CONTAINER_PORT", "http"), ("LOG_LEVEL", "loud"),
    ("DOCKER_URL", "/var/run/docker.sock"), ("DOCKER_TIMEOUT", "0"),
])
def test_malformed_values_name_the_variable(tmp_path, name, value):
    assert error_of(tmp_path, **{name: value}).startswith(name + ":")


def test_secret_values_are_never_echoed(tmp_path):
    message = error_of(tmp_path, SECRET_KEY="tooshort-but-secret")
    assert message.startswith("SECRET_KEY:")
    assert "tooshort-but-secret" not in message


def test_unreadable_file_is_one_line(tmp_path):
    with pytest.raises(config.ConfigError) as caught:
        config.load(str(tmp_path / "missing.env"), environ={})
    assert str(caught.value) == "cannot read configuration file %s: No such file or directory" % (
        tmp_path / "missing.env")


def test_unparsable_line_names_the_line(tmp_path):
    path = tmp_path / "bad.env"
    path.write_text("SECRET_KEY=%s\nthis is not a setting\n" % SECRET_KEY)
    with pytest.raises(config.ConfigError) as caught:
        config.load(str(path), environ={})
    assert str(caught.value) == "%s line 2: cannot parse, expected NAME=value" % path


def test_quoted_values_and_comments_are_read(tmp_path):
    path = tmp_path / "q.env"
    path.write_text('# comment\nPUBLIC_URL="https://desk.example"\nSECRET_KEY=\'%s\'\n'
                    'OAUTH_CLIENT_ID=a  # trailing comment\nOAUTH_CLIENT_SECRET=b\nOAUTH_ISSUER=https://school.example/iserv\n' % SECRET_KEY)
    loaded = config.load(str(path), environ={})
    assert (loaded.public_url, loaded.oauth_client_id) == ("https://desk.example", "a")


def test_env_example_is_generated_from_schema():
    with open(os.path.join(ROOT, ".env.example")) as stream:
        assert stream.read().rstrip("\n") == config.env_example().rstrip("\n"), \
            "run `make docs` to regenerate .env.example"


def test_env_example_loads_as_a_valid_configuration():
    loaded = config.load(os.path.join(ROOT, ".env.example"), environ={})
    assert loaded.public_url == "https://desk.school.example"


def test_readme_settings_table_is_generated_from_schema():
    with open(os.path.join(ROOT, "README.md")) as stream:
        readme = stream.read()
    match = re.search(r"<!-- settings:begin -->\n(.*?)\n<!-- settings:end -->", readme, re.S)
    assert match, "README.md lacks the settings markers"
    assert match.group(1) == config.markdown_table(), "run `make docs` to regenerate the table"
    names = re.findall(r"^\| `([A-Z_]+)` \|", match.group(1), re.M)
    assert names == [setting.name for setting in config.SCHEMA]
