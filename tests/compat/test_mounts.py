"""sys/mounts with hvac: enable, list, tune, disable."""

import hvac
import pytest

from conftest import policy_client, unique


def test_dev_server_mounts_secret_as_kv_v2(root):
    mounts = root.sys.list_mounted_secrets_engines()["data"]
    assert mounts["secret/"]["type"] == "kv"
    assert mounts["secret/"]["options"]["version"] == "2"
    assert root.sys.retrieve_mount_option("secret", "version") == "2"


def test_enable_secrets_engine_kv_v2(dev_server, root):
    response = root.sys.enable_secrets_engine("kv", path="team-kv", description="team secrets",
                                              options={"version": "2"})
    assert response.status_code == 204
    mount = root.sys.list_mounted_secrets_engines()["data"]["team-kv/"]
    assert mount["type"] == "kv"
    assert mount["description"] == "team secrets"
    assert mount["options"]["version"] == "2"
    assert isinstance(mount["accessor"], str) and mount["accessor"]

    # The new mount serves kv v2 at once.
    value = unique("team-kv")
    dev_server.remember(value)
    kv = root.secrets.kv.v2
    assert kv.create_or_update_secret("db", secret={"v": value}, mount_point="team-kv")["data"]["version"] == 1
    assert kv.read_secret("db", mount_point="team-kv", raise_on_deleted_version=True)["data"]["data"] == {"v": value}
    # And is separate from secret/.
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret("db", raise_on_deleted_version=True)


def test_enable_at_nested_path(root):
    root.sys.enable_secrets_engine("kv", path="teams/a/kv", options={"version": "2"})
    assert "teams/a/kv/" in root.sys.list_mounted_secrets_engines()["data"]
    root.secrets.kv.v2.create_or_update_secret("x", secret={"k": "v"}, mount_point="teams/a/kv")
    assert root.secrets.kv.v2.read_secret("x", mount_point="teams/a/kv",
                                          raise_on_deleted_version=True)["data"]["data"] == {"k": "v"}


def test_enable_at_used_path_is_refused(root):
    root.sys.enable_secrets_engine("kv", path="dup", options={"version": "2"})
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.enable_secrets_engine("kv", path="dup", options={"version": "2"})
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})


@pytest.mark.parametrize("path", ["sys", "auth", "sys/x", "auth/token"])
def test_enable_at_reserved_path_is_refused(root, path):
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.enable_secrets_engine("kv", path=path, options={"version": "2"})


def test_enable_unknown_engine_type_is_refused(root):
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.enable_secrets_engine("no-such-engine", path="nothing")
    assert "nothing/" not in root.sys.list_mounted_secrets_engines()["data"]


def test_list_mounted_secrets_engines(root):
    root.sys.enable_secrets_engine("kv", path="one", options={"version": "2"})
    root.sys.enable_secrets_engine("kv", path="two", options={"version": "2"})
    mounts = root.sys.list_mounted_secrets_engines()["data"]
    for path in ("secret/", "one/", "two/"):
        assert path in mounts
        assert mounts[path]["type"] == "kv"
        assert "default_lease_ttl" in mounts[path]["config"]
        assert "max_lease_ttl" in mounts[path]["config"]
    assert mounts["sys/"]["type"] == "system"
    assert len({mounts[p]["accessor"] for p in ("secret/", "one/", "two/")}) == 3


def test_disable_secrets_engine(root):
    root.sys.enable_secrets_engine("kv", path="gone", options={"version": "2"})
    root.secrets.kv.v2.create_or_update_secret("x", secret={"k": "v"}, mount_point="gone")
    assert root.sys.disable_secrets_engine("gone").status_code == 204
    assert "gone/" not in root.sys.list_mounted_secrets_engines()["data"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.kv.v2.read_secret("x", mount_point="gone", raise_on_deleted_version=True)
    # Re-enabled at the same path, it starts empty: the old data went with the mount.
    root.sys.enable_secrets_engine("kv", path="gone", options={"version": "2"})
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.kv.v2.read_secret("x", mount_point="gone", raise_on_deleted_version=True)


def test_disable_sys_is_refused(root):
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.disable_secrets_engine("sys")
    assert "sys/" in root.sys.list_mounted_secrets_engines()["data"]


def test_tune_mount_configuration(root):
    root.sys.enable_secrets_engine("kv", path="tuned", options={"version": "2"})
    response = root.sys.tune_mount_configuration("tuned", default_lease_ttl="1h", max_lease_ttl="2h",
                                                 description="tuned mount")
    assert response.status_code == 204
    conf = root.sys.read_mount_configuration("tuned")["data"]
    assert conf["default_lease_ttl"] == 3600
    assert conf["max_lease_ttl"] == 7200
    assert conf["description"] == "tuned mount"
    listed = root.sys.list_mounted_secrets_engines()["data"]["tuned/"]
    assert listed["config"]["default_lease_ttl"] == 3600
    assert listed["config"]["max_lease_ttl"] == 7200
    assert listed["description"] == "tuned mount"


def test_tune_default_above_max_is_refused(root):
    root.sys.enable_secrets_engine("kv", path="tuned", options={"version": "2"})
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.sys.tune_mount_configuration("tuned", default_lease_ttl="3h", max_lease_ttl="1h")


def test_mount_management_needs_permission(dev_server, root):
    c = policy_client(dev_server, root, "kv-only", 'path "secret/*" { capabilities = ["read"] }')
    with pytest.raises(hvac.exceptions.Forbidden):
        c.sys.enable_secrets_engine("kv", path="sneaky", options={"version": "2"})
    with pytest.raises(hvac.exceptions.Forbidden):
        c.sys.disable_secrets_engine("secret")
    assert "secret/" in root.sys.list_mounted_secrets_engines()["data"]
    assert "sneaky/" not in root.sys.list_mounted_secrets_engines()["data"]
