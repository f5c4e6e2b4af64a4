"""The local registry helper (tests/registry.py) against the real engine: push, pull, progress."""

import docker.errors
import pytest

from registry import LocalRegistry, RegistryError


def test_pushed_image_is_absent_locally_until_pulled_back_with_the_same_id(docker_client, demo_image,
                                                                           registry):
    original = docker_client.images.get(demo_image)

    reference = registry.push(docker_client, demo_image)

    assert reference == "%s/%s" % (registry.host, demo_image)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(reference)
    assert docker_client.images.get(demo_image).id == original.id, "push must keep the original tag"

    pulled = docker_client.images.pull(reference)

    assert pulled.id == original.id
    assert reference in pulled.tags


def test_pull_of_a_missing_image_streams_layer_progress_and_a_final_status(docker_client, demo_image,
                                                                          registry):
    # The demo image's layers are on the engine, so pulling it would download nothing;
    # push_fresh adds a layer that only the registry has.
    reference = registry.push_fresh(docker_client, demo_image)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(reference)
    repository, tag = reference.rsplit(":", 1)

    events = list(docker_client.api.pull(repository, tag=tag, stream=True, decode=True))

    assert not [event for event in events if "error" in event or "errorDetail" in event], events
    progress = [event for event in events if event.get("progressDetail", {}).get("total")]
    assert any(event["status"] == "Downloading" and 0 < event["progressDetail"]["current"]
               <= event["progressDetail"]["total"] for event in progress), events
    assert {"Already exists", "Pull complete"} <= {event.get("status") for event in events}, events
    final = events[-1].get("status", "")
    assert "Downloaded newer image" in final or "Image is up to date" in final, events
    # The base layers were reused, so the pulled image really is the demo image plus one layer.
    base_layers = docker_client.images.get(demo_image).attrs["RootFS"]["Layers"]
    pulled_layers = docker_client.images.get(reference).attrs["RootFS"]["Layers"]
    assert pulled_layers[:-1] == base_layers and len(pulled_layers) == len(base_layers) + 1


def test_missing_registry_binary_fails_with_the_install_command(tmp_path):
    with pytest.raises(RegistryError, match="apt-get install docker-registry"):
        LocalRegistry(binary=str(tmp_path / "docker-registry"))
