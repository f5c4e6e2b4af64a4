"""Settings: parsing, precedence, one-line errors, and the docs generated from SCHEMA."""

import datetime
import os
import re
import subprocess

import pytest
import requests

from conftest import ROOT, SECRET_KEY, iservdesk_command, write_config
from devtools import free_port, stop_process, wait_for
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


@pytest.mark.parametrize("value,access", [
    ("off", "off"), ("view", "view"), ("full", "full"), ("true", "full"), ("false", "off"), (" View ", "view")])
def test_admin_desktop_access_is_off_view_or_full(tmp_path, value, access):
    assert load(tmp_path, ADMIN_DESKTOP_ACCESS=value).admin_desktop_access == access
    assert load(tmp_path).admin_desktop_access == "off"
    assert error_of(tmp_path, ADMIN_DESKTOP_ACCESS="watch") == (
        "ADMIN_DESKTOP_ACCESS: 'watch' is not valid: expected off, view or full")


@pytest.mark.parametrize("name,value", [
    ("LISTEN", "8080"), ("LISTEN", "example.com:80"), ("PUBLIC_URL", "desk.example"),
    ("KASM_CONTAINER_PORT", "http"), ("LOG_LEVEL", "loud"),
    ("DOCKER_URL", "/var/run/docker.sock"), ("DOCKER_TIMEOUT", "0"),
])
def test_malformed_values_name_the_variable(tmp_path, name, value):
    assert error_of(tmp_path, **{name: value}).startswith(name + ":")


# Every duration setting, its default in seconds, and what its value is for the code that
# reads it: a timedelta, or whole seconds for the timeouts handed to sockets and clients.
DURATIONS = {
    "OAUTH_TIMEOUT": (10, int),
    "SESSION_IDLE_TIMEOUT": (4 * 3600, datetime.timedelta),
    "SESSION_LIFETIME": (12 * 3600, datetime.timedelta),
    "DOCKER_TIMEOUT": (10, int),
    "DESKTOP_READY_TIMEOUT": (180, int),
    "PROXY_TIMEOUT": (120, int),
    "IDLE_TIMEOUT": (2 * 3600, datetime.timedelta),
    "PREPARED_UNUSED_TIMEOUT": (1800, datetime.timedelta),
    "REMOVE_STOPPED_AFTER": (7 * 86400, datetime.timedelta),
}
FORMS = [("90s", 90), ("3m", 180), ("4h", 4 * 3600), ("7d", 7 * 86400), ("120", 120),
         ("1s", 1), ("3650d", 3650 * 86400)]
EXPECTED_FORMS = "expected 90s, 3m, 4h, 7d or plain seconds"


def seconds_of(value):
    return value.total_seconds() if isinstance(value, datetime.timedelta) else value


def test_every_duration_setting_uses_the_one_duration_parser():
    parsers = (config.parse_duration, config.parse_duration_seconds)
    assert [s.name for s in config.SCHEMA if s.parse in parsers] == list(DURATIONS)


@pytest.mark.parametrize("name", DURATIONS)
def test_duration_defaults_keep_their_meaning(tmp_path, name):
    seconds, kind = DURATIONS[name]
    value = getattr(load(tmp_path, **{name: None}), name.lower())
    assert (type(value), seconds_of(value)) == (kind, seconds)


@pytest.mark.parametrize("name", DURATIONS)
@pytest.mark.parametrize("form,seconds", FORMS)
def test_duration_settings_accept_every_form(tmp_path, name, form, seconds):
    value = getattr(load(tmp_path, **{name: form}), name.lower())
    assert (type(value), seconds_of(value)) == (DURATIONS[name][1], seconds)


@pytest.mark.parametrize("name", DURATIONS)
@pytest.mark.parametrize("value,reason", [
    ("1:00:00", EXPECTED_FORMS), ("30 minutes", EXPECTED_FORMS), ("4 h", EXPECTED_FORMS),
    ("1.5h", EXPECTED_FORMS), ("4H", EXPECTED_FORMS), ("2w", EXPECTED_FORMS),
    ("-5", EXPECTED_FORMS), ("+5", EXPECTED_FORMS), ("1_000", EXPECTED_FORMS),
    ("h", EXPECTED_FORMS), ("0", "must be longer than zero"), ("0m", "must be longer than zero"),
    ("3651d", "must be at most 3650d"), ("99999999999999999999d", "must be at most 3650d"),
])
def test_bad_durations_name_the_variable_and_the_forms(tmp_path, name, value, reason):
    assert error_of(tmp_path, **{name: value}) == "%s: %r is not valid: %s" % (name, value, reason)


def test_bad_duration_stops_the_portal_with_exit_2_and_one_line(tmp_path):
    path = write_config(tmp_path / "bad.env", IDLE_TIMEOUT="1:00:00")
    result = subprocess.run(iservdesk_command("--config", path, "serve"), cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "iservdesk: IDLE_TIMEOUT: '1:00:00' is not valid: %s\n" % EXPECTED_FORMS


def test_help_of_every_duration_setting_names_the_forms():
    for name in DURATIONS:
        assert "90s, 3m, 4h, 7d or plain seconds" in config.BY_NAME[name].help, name


def test_help_texts_speak_to_operators():
    for setting in config.SCHEMA:
        assert "seed" not in setting.help.lower(), setting.name


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


def test_the_idle_warning_comes_before_the_idle_stop_or_not_at_all(tmp_path):
    assert load(tmp_path).idle_warning == datetime.timedelta(minutes=10)
    assert load(tmp_path, IDLE_WARNING="0").idle_warning is None
    assert load(tmp_path, IDLE_WARNING="off").idle_warning is None
    assert load(tmp_path, IDLE_WARNING="90s", IDLE_TIMEOUT="5m").idle_warning == datetime.timedelta(seconds=90)
    # Left unset, it shrinks with a short IDLE_TIMEOUT; set, it must fit.
    assert load(tmp_path, IDLE_TIMEOUT="5m").idle_warning == datetime.timedelta(seconds=150)
    assert error_of(tmp_path, IDLE_WARNING="2h") == \
        "IDLE_WARNING: must be shorter than IDLE_TIMEOUT (2h), or 0 for no warning"
    assert error_of(tmp_path, IDLE_WARNING="soon").startswith("IDLE_WARNING: 'soon' is not valid: expected")


def test_start_concurrency_is_a_count_or_the_hosts_cpus(tmp_path):
    import os
    assert load(tmp_path, START_CONCURRENCY="3").start_concurrency == 3
    assert load(tmp_path).start_concurrency == 2 * os.cpu_count()
    assert error_of(tmp_path, START_CONCURRENCY="0") == \
        "START_CONCURRENCY: '0' is not valid: expected a whole number above zero"


def test_homes_of_people_long_gone_are_kept_unless_said_otherwise(tmp_path):
    assert load(tmp_path).remove_homes_after is None
    assert load(tmp_path, REMOVE_HOMES_AFTER="400d").remove_homes_after == datetime.timedelta(days=400)
    assert error_of(tmp_path, REMOVE_HOMES_AFTER="a year").startswith("REMOVE_HOMES_AFTER: 'a year' is not valid")


@pytest.mark.parametrize("name", ["UPLOAD_MAX_SIZE", "HOME_QUOTA"])
@pytest.mark.parametrize("form,size", [("1g", 1024 ** 3), ("500m", 500 * 1024 ** 2), ("64k", 65536), ("1024", 1024),
                                       ("5G", 5 * 1024 ** 3), ("2GiB", 2 * 1024 ** 3), ("1t", 1024 ** 4)])
def test_sizes_accept_bytes_and_binary_units(tmp_path, name, form, size):
    assert getattr(load(tmp_path, **{name: form}), name.lower()) == size


def test_size_defaults_fit_a_school_server(tmp_path):
    loaded = load(tmp_path, UPLOAD_MAX_SIZE=None, HOME_QUOTA=None)
    assert (loaded.upload_max_size, loaded.home_quota) == (1024 ** 3, 5 * 1024 ** 3)


@pytest.mark.parametrize("value", ["0", "1.5g", "5 gb", "-1g", "g", "lots", "1p"])
def test_bad_sizes_name_the_variable_and_the_forms(tmp_path, value):
    message = error_of(tmp_path, HOME_QUOTA=value)
    assert message.startswith("HOME_QUOTA: %r is not valid: " % value), message
    assert "500m, 1g or 5g" in message or "larger than zero" in message


# -- a settings file of the old product (iserv-remote-desktop) --

def seed_file(path, **extra):
    """A settings file written the seed's way: its OAuth endpoints without OAUTH_ISSUER, its
    Docker/Kasm and database names, and the Flask names iservdesk does not use."""
    seed = dict(DEBUG="False", FLASK_ENV="production", SQLALCHEMY_TRACK_MODIFICATIONS="False",
                FRONTEND_URL="https://desk.school.example", DOCKER_HOST_PROTOCOL="https",
                DOCKER_HOST_URL="desk.school.example", PUBLIC_URL=None, OAUTH_ISSUER=None,
                OAUTH_AUTHORIZE_URL="https://school.example/iserv/oauth/v2/auth",
                OAUTH_TOKEN_URL="https://school.example/iserv/oauth/v2/token",
                OAUTH_USERINFO_URL="https://school.example/iserv/public/oauth/userinfo",
                OAUTH_JWKS_URI="https://school.example/iserv/public/jwk",
                KASM_IMAGE="kasmweb/ubuntu-focal-desktop:1.15.0", KASM_CONTAINER_PORT="6901",
                VNC_PASSWORD="", DATABASE_URI="postgresql://desk:pw-secret@db/desk")
    seed.update(extra)
    return write_config(path, **seed)


def test_a_seed_settings_file_loads_with_one_note_per_unused_name(tmp_path):
    loaded = config.load(seed_file(tmp_path / "seed.env"), environ={})
    unused = ["DEBUG", "FLASK_ENV", "SQLALCHEMY_TRACK_MODIFICATIONS", "FRONTEND_URL", "DOCKER_HOST_PROTOCOL"]
    assert [note.split(":", 1)[0] for note in loaded.notes] == unused + ["DATABASE_URI", "OAUTH_ISSUER"]
    assert loaded.notes[1] == "FLASK_ENV: not used by iservdesk (iservdesk is not a Flask application); remove it"
    # The old database is not used (nor its password shown); import-seed reads it.
    assert loaded.database_uri == "/var/lib/iservdesk/iservdesk.db"
    assert loaded.seed_database_uri == "postgresql://desk:pw-secret@db/desk"
    assert "pw-secret" not in " ".join(loaded.notes) and "import-seed" in loaded.notes[5]
    # Without OAUTH_ISSUER, the issuer is IServ's on the host of the endpoints.
    assert loaded.oauth_issuer == "https://school.example/iserv"
    assert loaded.public_url == "https://desk.school.example"


def test_only_all_four_endpoints_make_oauth_issuer_optional(tmp_path):
    message = error_of(tmp_path, OAUTH_ISSUER=None, OAUTH_AUTHORIZE_URL="https://school.example/iserv/oauth/v2/auth")
    assert message.startswith("OAUTH_ISSUER: missing"), message
    assert "OAUTH_JWKS_URI" in message


def test_names_that_are_not_the_seeds_stay_errors(tmp_path):
    assert error_of(tmp_path, FLASK_ENVV="production").startswith("FLASK_ENVV: unknown setting")
    assert error_of(tmp_path, DEBUGG="1") == "DEBUGG: unknown setting in %s" % (tmp_path / "t.env")


def test_a_seed_settings_file_serves_and_check_says_each_note_once(tmp_path):
    port = free_port()
    path = seed_file(tmp_path / "seed.env", DATABASE_URI="sqlite:///%s" % (tmp_path / "state.db"),
                     LISTEN="127.0.0.1:%d" % port, DOCKER_HOST_URL="127.0.0.1:%d" % port)
    with open(tmp_path / "serve.log", "w") as log:
        process = subprocess.Popen(iservdesk_command("--config", path, "serve"), cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: requests.get("http://127.0.0.1:%d/healthz" % port, timeout=2).status_code == 200, 30,
                 "the portal with the old settings file")
    finally:
        stop_process(process)
    served = (tmp_path / "serve.log").read_text()
    lines = [line for line in served.splitlines() if "not used by iservdesk" in line]
    assert len(lines) == 5 and lines[0].endswith("DEBUG: not used by iservdesk (iservdesk has no debug mode; "
                                                 "LOG_LEVEL=DEBUG logs more); remove it"), served
    assert "Traceback" not in served
    checked = subprocess.run(iservdesk_command("--config", path, "check"), cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    assert "WARN configuration: FRONTEND_URL: not used by iservdesk" in checked.stdout, checked.stdout
    assert checked.stdout.count("not used by iservdesk") == 5


def test_swarm_settings_say_what_is_wrong_in_one_line(tmp_path):
    assert "DOCKER_BACKEND: 'cluster' is not valid: expected engine or swarm" in error_of(
        tmp_path, DOCKER_BACKEND="cluster")
    assert "every home would be the same folder" in error_of(
        tmp_path, DOCKER_BACKEND="swarm", HOME_VOLUME_DRIVER="local", HOME_VOLUME_OPTIONS="type=nfs;device=:/homes")
    assert "expected name=value pairs" in error_of(tmp_path, HOME_VOLUME_DRIVER="local", HOME_VOLUME_OPTIONS="nfs")
    assert error_of(tmp_path, HOME_VOLUME_OPTIONS="device=/h/{name}").startswith(
        "HOME_VOLUME_OPTIONS: set, but HOME_VOLUME_DRIVER is not")
    shared = load(tmp_path, DOCKER_BACKEND="swarm", HOME_VOLUME_DRIVER="local",
                  HOME_VOLUME_OPTIONS="type=nfs; o=addr=10.0.0.5,rw,nfsvers=4.2 ;device=:/export/{name}")
    assert shared.docker_backend == "swarm" and shared.home_volume_options == {
        "type": "nfs", "o": "addr=10.0.0.5,rw,nfsvers=4.2", "device": ":/export/{name}"}
    alone = load(tmp_path, HOME_VOLUME_DRIVER="local", HOME_VOLUME_OPTIONS="device=/h/{name}")
    assert any(note.startswith("HOME_VOLUME_DRIVER: used with DOCKER_BACKEND=swarm only") for note in alone.notes)
