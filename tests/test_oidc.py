"""Claim normalisation (IServ's shapes and the plain shapes other providers send) and
which issuer a discovery document may name."""

import pytest

from iservdesk import oidc


def test_iserv_groups_object_gives_account_names():
    groups = {"12": {"act": "Klasse-7a", "name": "Klasse 7a"}, "40": {"act": "schueler", "name": "Schüler"}}
    assert oidc.normalise_groups(groups) == ["klasse-7a", "schueler"]


@pytest.mark.parametrize("value,expected", [
    (["Teachers", "admins"], ["admins", "teachers"]),
    ([], []), ({}, []), (None, []), ("admins", []),
    ([{"act": "a"}, {"name": "B"}, 3, ""], ["a"]),
])
def test_other_group_shapes(value, expected):
    assert oidc.normalise_groups(value) == expected


def test_groups_never_match_on_display_names():
    # IServ's display names are free text: one named "admins" must not make its members admins.
    groups = {"60": {"act": "schuelerrat", "name": "admins"}, "61": {"name": "Klasse-7A"},
              "62": {"act": "", "name": "teachers"}, "63": {"id": "admins", "name": "x"}}
    assert oidc.normalise_groups(groups) == ["schuelerrat"]
    assert oidc.normalise_groups([{"name": "admins"}, "Teachers"]) == ["teachers"]


def test_group_names_are_kept_by_account_name_for_showing():
    groups = {"12": {"act": "Klasse-7a", "name": " Klasse 7a "}, "60": {"act": "x", "name": ""},
              "61": {"name": "no act"}, "62": {"act": "y", "name": 5}}
    assert oidc.group_names(groups) == {"klasse-7a": "Klasse 7a"}
    assert oidc.group_names(["plain", None]) == {} and oidc.group_names("klasse-7a") == {}


def test_roles_never_match_on_display_names():
    roles = [{"name": "ROLE_ADMIN", "displayName": "ROLE_ADMIN"}, {"displayName": "ROLE_TEACHER"},
             {"id": "", "displayName": "Admin"}, {"id": "ROLE_STUDENT", "displayName": "ROLE_ADMIN"}]
    assert oidc.normalise_roles(roles) == ["role_student"]


@pytest.mark.parametrize("value,expected", [
    ([{"id": "ROLE_TEACHER", "displayName": "Lehrer"}], ["role_teacher"]),
    (["ROLE_ADMIN", "role_admin"], ["role_admin"]),
    ({"1": {"id": "ROLE_X"}}, ["role_x"]),
    (None, []), ("ROLE_ADMIN", []),
])
def test_role_shapes(value, expected):
    assert oidc.normalise_roles(value) == expected


def test_identity_keys_on_uuid_and_keeps_dotted_names():
    fields = oidc.identity({"sub": "s-1", "uuid": "u-1", "preferred_username": "Max.Muster",
                            "name": "Max Muster", "groups": {"1": {"act": "klasse-7a"}}}, "preferred_username")
    assert fields["uuid"] == "u-1"
    assert fields["username"] == "max.muster"
    assert fields["groups"] == ["klasse-7a"]


def test_identity_falls_back_to_sub():
    assert oidc.identity({"sub": "s-1", "preferred_username": "ben"}, "preferred_username")["uuid"] == "s-1"


@pytest.mark.parametrize("name", ["", "../etc", "a b", "ä", "-lead", "x" * 64])
def test_unusable_account_names_are_refused(name):
    with pytest.raises(oidc.LoginError) as caught:
        oidc.identity({"sub": "s", "preferred_username": name}, "preferred_username")
    assert caught.value.status == 403


CONFIGURED = "https://school.example/iserv"


@pytest.mark.parametrize("issuer,configured,discovery_url", [
    # OAUTH_ISSUER is the issuer: the same, up to one trailing slash.
    (CONFIGURED, CONFIGURED, CONFIGURED + "/.well-known/openid-configuration"),
    (CONFIGURED + "/", CONFIGURED, CONFIGURED + "/.well-known/openid-configuration"),
    (CONFIGURED, CONFIGURED + "/", CONFIGURED + "/.well-known/openid-configuration"),
    # OAUTH_ISSUER is the host: IServ's host-wide discovery speaks for issuers on its origin.
    ("https://school.example/iserv", "https://school.example",
     "https://school.example/iserv/public/.well-known/openid-configuration"),
    ("https://school.example", "https://school.example",
     "https://school.example/iserv/public/.well-known/openid-configuration"),
    # OAUTH_ISSUER is the discovery URL: the issuer whose discovery URL it is (Discovery 4.3).
    ("https://idp.example/realms/school",
     "https://idp.example/realms/school/.well-known/openid-configuration",
     "https://idp.example/realms/school/.well-known/openid-configuration"),
    ("https://school.example", "https://school.example/iserv/public/.well-known/openid-configuration",
     "https://school.example/iserv/public/.well-known/openid-configuration"),
])
def test_discovery_may_name_the_configured_issuer(issuer, configured, discovery_url):
    assert oidc.issuer_belongs(issuer, configured, discovery_url)


@pytest.mark.parametrize("issuer,configured,discovery_url", [
    ("https://other.example/iserv", CONFIGURED, CONFIGURED + "/.well-known/openid-configuration"),
    (CONFIGURED + "//", CONFIGURED, CONFIGURED + "/.well-known/openid-configuration"),
    ("https://school.example/iserv/x", CONFIGURED, CONFIGURED + "/.well-known/openid-configuration"),
    ("http://school.example/iserv", CONFIGURED, CONFIGURED + "/.well-known/openid-configuration"),
    # Another tenant on the same host is another provider.
    ("https://idp.example/realms/other", "https://idp.example/realms/school",
     "https://idp.example/realms/school/.well-known/openid-configuration"),
    # IServ's host-wide document speaks only for its own origin.
    ("https://other.example", "https://school.example",
     "https://school.example/iserv/public/.well-known/openid-configuration"),
    ("https://school.example:8443", "https://school.example",
     "https://school.example/iserv/public/.well-known/openid-configuration"),
    ("https://school.example/iserv?x=1", "https://school.example",
     "https://school.example/iserv/public/.well-known/openid-configuration"),
    # The host's root document speaks for the host, not for a path below it.
    ("https://school.example/iserv", "https://school.example",
     "https://school.example/.well-known/openid-configuration"),
    (None, CONFIGURED, CONFIGURED + "/.well-known/openid-configuration"),
    ("", CONFIGURED, CONFIGURED + "/.well-known/openid-configuration"),
    (["https://school.example/iserv"], CONFIGURED, CONFIGURED + "/.well-known/openid-configuration"),
])
def test_discovery_naming_another_issuer_is_refused(issuer, configured, discovery_url):
    assert not oidc.issuer_belongs(issuer, configured, discovery_url)
