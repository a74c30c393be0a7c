"""The transit secrets engine with hvac's `secrets.transit`, unchanged.

Every test enables `transit/` on a dev server and drives it the way a Vault
user would. Plaintexts, data keys and random bytes are registered with the
server fixture, whose teardown fails the test if any of them reached a log.
"""

import base64

import hvac
import pytest

from conftest import policy_client, unique


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.fixture
def transit(dev_server, root):
    """`secrets.transit` of the root client, with the engine enabled at `transit/`."""
    root.sys.enable_secrets_engine("transit")
    return root.secrets.transit


def secret_plaintext(server, label: str) -> bytes:
    """A plaintext the log must never show, raw or in base64."""
    value = unique(label)
    server.remember(value, b64(value.encode()))
    return value.encode()


def test_transit_is_listed_as_a_mount(root, transit):
    mounts = root.sys.list_mounted_secrets_engines()["data"]
    assert mounts["transit/"]["type"] == "transit"


def test_create_read_and_list_keys(transit):
    transit.create_key(name="orders")
    transit.create_key(name="payments", key_type="chacha20-poly1305")

    key = transit.read_key(name="orders")["data"]
    assert key["name"] == "orders"
    assert key["type"] == "aes256-gcm96"
    assert key["latest_version"] == 1
    assert key["min_decryption_version"] == 1
    assert key["min_encryption_version"] == 0
    assert key["deletion_allowed"] is False
    assert key["exportable"] is False
    assert key["derived"] is False
    assert key["supports_encryption"] and key["supports_decryption"] and key["supports_derivation"]
    assert key["supports_signing"] is False
    assert list(key["keys"]) == ["1"] and isinstance(key["keys"]["1"], int)

    assert transit.read_key(name="payments")["data"]["type"] == "chacha20-poly1305"
    assert sorted(transit.list_keys()["data"]["keys"]) == ["orders", "payments"]

    with pytest.raises(hvac.exceptions.InvalidPath):
        transit.read_key(name="missing")


def test_unsupported_key_options_are_refused(transit):
    with pytest.raises(hvac.exceptions.InvalidRequest):
        transit.create_key(name="exp", exportable=True)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        transit.create_key(name="backup", allow_plaintext_backup=True)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        transit.create_key(name="rsa", key_type="rsa-2048")
    with pytest.raises(hvac.exceptions.InvalidPath):
        transit.read_key(name="exp")


def test_encrypt_decrypt_round_trip(dev_server, transit):
    transit.create_key(name="app")
    plaintext = secret_plaintext(dev_server, "plain")
    encrypted = transit.encrypt_data(name="app", plaintext=b64(plaintext))["data"]
    ciphertext = encrypted["ciphertext"]
    assert ciphertext.startswith("cairn:v1:")
    assert encrypted["key_version"] == 1
    decrypted = transit.decrypt_data(name="app", ciphertext=ciphertext)["data"]
    assert unb64(decrypted["plaintext"]) == plaintext
    # Vault's prefix is accepted on decrypt.
    vault_style = "vault:" + ciphertext[len("cairn:"):]
    assert unb64(transit.decrypt_data(name="app", ciphertext=vault_style)["data"]["plaintext"]) == plaintext


def test_encrypt_creates_a_missing_key(dev_server, transit):
    plaintext = secret_plaintext(dev_server, "upsert")
    ciphertext = transit.encrypt_data(name="auto", plaintext=b64(plaintext))["data"]["ciphertext"]
    assert transit.read_key(name="auto")["data"]["type"] == "aes256-gcm96"
    assert unb64(transit.decrypt_data(name="auto", ciphertext=ciphertext)["data"]["plaintext"]) == plaintext


def test_derived_key_needs_its_context(dev_server, transit):
    transit.create_key(name="tenants", derived=True)
    assert transit.read_key(name="tenants")["data"]["derived"] is True
    plaintext = secret_plaintext(dev_server, "tenant")
    ctx_a, ctx_b = b64(b"tenant-a"), b64(b"tenant-b")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        transit.encrypt_data(name="tenants", plaintext=b64(plaintext))
    ciphertext = transit.encrypt_data(name="tenants", plaintext=b64(plaintext), context=ctx_a)["data"]["ciphertext"]
    assert unb64(transit.decrypt_data(name="tenants", ciphertext=ciphertext, context=ctx_a)["data"]["plaintext"]) == plaintext
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        transit.decrypt_data(name="tenants", ciphertext=ciphertext, context=ctx_b)
    assert "message authentication failed" in str(err.value)


def test_batch_encrypt_and_decrypt(dev_server, transit):
    transit.create_key(name="bulk")
    items = [secret_plaintext(dev_server, f"item{i}") for i in range(5)]
    batch = [{"plaintext": b64(p), "reference": str(i)} for i, p in enumerate(items)]
    results = transit.encrypt_data(name="bulk", batch_input=batch)["data"]["batch_results"]
    assert [r["reference"] for r in results] == ["0", "1", "2", "3", "4"]
    assert all(r["ciphertext"].startswith("cairn:v1:") for r in results)
    decrypted = transit.decrypt_data(
        name="bulk", batch_input=[{"ciphertext": r["ciphertext"]} for r in results])["data"]["batch_results"]
    assert [unb64(r["plaintext"]) for r in decrypted] == items


def test_batch_with_a_bad_item_reports_it_per_item(dev_server, root, transit):
    transit.create_key(name="bulk")
    good = secret_plaintext(dev_server, "good")
    ciphertext = transit.encrypt_data(name="bulk", plaintext=b64(good))["data"]["ciphertext"]
    tampered = ciphertext[:-6] + ("AAAA==" if not ciphertext.endswith("AAAA==") else "BBBB==")
    # Vault answers 400 with the per-item results; partial_failure_response_code
    # asks for another status when some items succeeded (hvac has no argument
    # for it, so the raw adapter sends it).
    response = root.adapter.post("/v1/transit/decrypt/bulk", json={
        "batch_input": [{"ciphertext": ciphertext}, {"ciphertext": tampered}, {"ciphertext": "garbage"}],
        "partial_failure_response_code": 200,
    })
    results = response["data"]["batch_results"]
    assert unb64(results[0]["plaintext"]) == good
    assert results[1]["error"] == "cipher: message authentication failed"
    assert results[2]["error"] == "invalid ciphertext: no prefix"
    with pytest.raises(hvac.exceptions.InvalidRequest):
        transit.decrypt_data(name="bulk", batch_input=[{"ciphertext": ciphertext}, {"ciphertext": tampered}])


def test_rotate_rewrap_and_min_decryption_version(dev_server, transit):
    transit.create_key(name="rot")
    plaintext = secret_plaintext(dev_server, "rot")
    v1 = transit.encrypt_data(name="rot", plaintext=b64(plaintext))["data"]["ciphertext"]
    transit.rotate_key(name="rot")
    key = transit.read_key(name="rot")["data"]
    assert key["latest_version"] == 2
    assert sorted(key["keys"]) == ["1", "2"]

    v2 = transit.encrypt_data(name="rot", plaintext=b64(plaintext))["data"]["ciphertext"]
    assert v2.startswith("cairn:v2:")
    assert unb64(transit.decrypt_data(name="rot", ciphertext=v1)["data"]["plaintext"]) == plaintext

    rewrapped = transit.rewrap_data(name="rot", ciphertext=v1)["data"]
    assert rewrapped["ciphertext"].startswith("cairn:v2:")
    assert rewrapped["key_version"] == 2

    transit.update_key_configuration(name="rot", min_decryption_version=2)
    key = transit.read_key(name="rot")["data"]
    assert key["min_decryption_version"] == 2
    assert list(key["keys"]) == ["2"]
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        transit.decrypt_data(name="rot", ciphertext=v1)
    assert "disallowed by policy (too old)" in str(err.value)
    assert unb64(transit.decrypt_data(name="rot", ciphertext=rewrapped["ciphertext"])["data"]["plaintext"]) == plaintext


def test_update_key_configuration_is_validated(transit):
    transit.create_key(name="cfg")
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        transit.update_key_configuration(name="cfg", min_decryption_version=5)
    assert "latest key version is 1" in str(err.value)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        transit.update_key_configuration(name="cfg", exportable=True)
    transit.rotate_key(name="cfg")
    transit.update_key_configuration(name="cfg", min_encryption_version=2, deletion_allowed=True)
    key = transit.read_key(name="cfg")["data"]
    assert key["min_encryption_version"] == 2
    assert key["deletion_allowed"] is True


def test_delete_key_needs_deletion_allowed(transit):
    transit.create_key(name="doomed")
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        transit.delete_key(name="doomed")
    assert "deletion is not allowed" in str(err.value)
    transit.update_key_configuration(name="doomed", deletion_allowed=True)
    transit.delete_key(name="doomed")
    with pytest.raises(hvac.exceptions.InvalidPath):
        transit.read_key(name="doomed")
    with pytest.raises(hvac.exceptions.InvalidPath):
        transit.list_keys()


def test_ciphertext_of_another_key_fails(dev_server, transit):
    transit.create_key(name="a")
    transit.create_key(name="b")
    ciphertext = transit.encrypt_data(name="a", plaintext=b64(secret_plaintext(dev_server, "a")))["data"]["ciphertext"]
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        transit.decrypt_data(name="b", ciphertext=ciphertext)
    assert "message authentication failed" in str(err.value)
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        transit.decrypt_data(name="nope", ciphertext=ciphertext)
    assert "encryption key not found" in str(err.value)


@pytest.mark.parametrize("key_type", ["plaintext", "wrapped"])
@pytest.mark.parametrize("bits", [None, 128, 512])
def test_generate_data_key(dev_server, transit, key_type, bits):
    transit.create_key(name="dk")
    data = transit.generate_data_key(name="dk", key_type=key_type, bits=bits)["data"]
    assert data["ciphertext"].startswith("cairn:v1:")
    decrypted = unb64(transit.decrypt_data(name="dk", ciphertext=data["ciphertext"])["data"]["plaintext"])
    dev_server.remember(b64(decrypted))
    assert len(decrypted) == (bits or 256) // 8
    if key_type == "plaintext":
        assert unb64(data["plaintext"]) == decrypted
    else:
        assert "plaintext" not in data or data["plaintext"] is None


def test_generate_hmac_and_verify(dev_server, root, transit):
    transit.create_key(name="mac")
    message = b64(secret_plaintext(dev_server, "msg"))
    mac = transit.generate_hmac(name="mac", hash_input=message)["data"]["hmac"]
    assert mac.startswith("cairn:v1:")
    assert len(unb64(mac.split(":", 2)[2])) == 32
    mac512 = transit.generate_hmac(name="mac", hash_input=message, algorithm="sha2-512")["data"]["hmac"]
    assert len(unb64(mac512.split(":", 2)[2])) == 64

    assert transit.verify_signed_data(name="mac", hash_input=message, hmac=mac)["data"]["valid"] is True
    assert transit.verify_signed_data(name="mac", hash_input=message, hmac=mac512,
                                      hash_algorithm="sha2-512")["data"]["valid"] is True
    assert transit.verify_signed_data(name="mac", hash_input=b64(b"other"), hmac=mac)["data"]["valid"] is False


@pytest.mark.parametrize("n_bytes,output_format,decode", [
    (None, None, unb64),
    (16, "base64", unb64),
    (48, "hex", bytes.fromhex),
])
def test_generate_random_bytes(transit, n_bytes, output_format, decode):
    data = transit.generate_random_bytes(n_bytes=n_bytes, output_format=output_format)["data"]
    assert len(decode(data["random_bytes"])) == (n_bytes or 32)


def test_random_bytes_differ_and_bad_sizes_are_refused(transit):
    a = transit.generate_random_bytes(n_bytes=32)["data"]["random_bytes"]
    b = transit.generate_random_bytes(n_bytes=32)["data"]["random_bytes"]
    assert a != b
    with pytest.raises(hvac.exceptions.InvalidRequest):
        transit.generate_random_bytes(n_bytes=0)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        transit.generate_random_bytes(n_bytes=32, output_format="base32")


def test_a_token_with_only_update_cannot_create_keys_by_encrypting(dev_server, root, transit):
    client = policy_client(dev_server, root, "transit-update",
                           'path "transit/encrypt/*" { capabilities = ["update"] }')
    plaintext = b64(secret_plaintext(dev_server, "acl"))
    # Creating a key by encrypting needs `create` (Vault's existence check).
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.transit.encrypt_data(name="new-key", plaintext=plaintext)
    with pytest.raises(hvac.exceptions.InvalidPath):
        transit.read_key(name="new-key")
    transit.create_key(name="new-key")
    assert client.secrets.transit.encrypt_data(name="new-key", plaintext=plaintext)["data"]["key_version"] == 1
