"""The keyring refuses unsafe states; pseudonyms are keyed, domain-separated and pinned."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.errors import KeyringError
from tests.support.core import KEY_ID, SECRET, SECRET_B64, SERVED, write_keyring

PSEUDONYM = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}:[A-Za-z0-9_-]{22}$")


def expected_pseudonym(secret: bytes, key_id: str, purpose: str, id_type: str, value: str) -> str:
    """The contract's construction, written out independently of pipeline.core.keys."""
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"cdrveil/pseudonym/v1",
        info=f"{purpose}/{id_type}".encode(),
    ).derive(secret)
    digest = hmac.new(key, value.encode("ascii"), hashlib.sha256).digest()[:16]
    return key_id + ":" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# --- known answers ---------------------------------------------------------------------------


def test_known_answer_pseudonym_matches_the_contract_construction(tmp_path: Path) -> None:
    """bytes(range(32)), marketing/msisdn, 46701234567 -> HKDF + HMAC-SHA-256/128, base64url."""
    keyring = Keyring.load(write_keyring(tmp_path / "k.json", {"kat": SECRET}, active="kat"))
    actual = Pseudonymizer(keyring).pseudonym("marketing", "msisdn", "46701234567")
    assert actual == expected_pseudonym(SECRET, "kat", "marketing", "msisdn", "46701234567")
    # Pinned literally too, so a change of the construction cannot slip through both sides.
    assert actual == "kat:QR1ueOmF0X6p27AFlw4IQQ"


@pytest.mark.parametrize(
    ("purpose", "id_type", "value"),
    [
        ("marketing", "imsi", "240011234567890"),
        ("service_improvement", "msisdn", "46701234567"),
        ("fraud_prevention", "imei", "49015420323751"),
        ("network_planning", "imsi", "240011234567890"),
    ],
)
def test_pseudonyms_follow_the_construction_for_every_purpose_and_type(
    pseudonymizer: Pseudonymizer, purpose: str, id_type: str, value: str
) -> None:
    """The construction holds beyond the pinned example."""
    assert pseudonymizer.pseudonym(purpose, id_type, value) == expected_pseudonym(
        SECRET, KEY_ID, purpose, id_type, value
    )


def test_pseudonyms_carry_the_key_id_and_128_bits(pseudonymizer: Pseudonymizer) -> None:
    """'<keyId>:' + 22 base64url characters (16 bytes)."""
    value = pseudonymizer.pseudonym("marketing", "msisdn", SERVED)
    assert PSEUDONYM.match(value)
    assert value.startswith(KEY_ID + ":")
    assert len(base64.urlsafe_b64decode(value.split(":")[1] + "==")) == 16


def test_domain_separation_by_purpose_and_type(pseudonymizer: Pseudonymizer) -> None:
    """Every (purpose, type) gives a different pseudonym of the same digits."""
    digits = "240011234567890"
    seen = {
        pseudonymizer.pseudonym(purpose, id_type, digits)
        for purpose in ("marketing", "service_improvement", "fraud_prevention", "network_planning")
        for id_type in ("msisdn", "imsi", "imei")
    }
    assert len(seen) == 12


def test_same_identifier_same_purpose_gives_the_same_pseudonym(
    pseudonymizer: Pseudonymizer, keyring_file: Path
) -> None:
    """Stable within an epoch, also across Pseudonymizer instances (no hidden state)."""
    first = pseudonymizer.pseudonym("marketing", "msisdn", SERVED)
    again = Pseudonymizer(Keyring.load(keyring_file)).pseudonym("marketing", "msisdn", SERVED)
    assert first == again == pseudonymizer.pseudonym("marketing", "msisdn", SERVED)


def test_pseudonym_is_not_an_unkeyed_hash(pseudonymizer: Pseudonymizer) -> None:
    """Not SHA-256 of the identifier, nor any truncation or encoding of it."""
    value = pseudonymizer.pseudonym("marketing", "msisdn", SERVED)
    body = value.split(":", 1)[1]
    digest = hashlib.sha256(SERVED.encode()).digest()
    assert body != base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    assert body not in base64.urlsafe_b64encode(digest).decode()
    assert body not in digest.hex()
    assert body not in base64.b64encode(digest).decode()
    for unkeyed in (hashlib.sha256(b"+" + SERVED.encode()), hashlib.md5(SERVED.encode())):  # noqa: S324 - comparison only
        raw = unkeyed.digest()
        assert body != base64.urlsafe_b64encode(raw[:16]).rstrip(b"=").decode()


def test_unknown_identifier_type_is_refused(pseudonymizer: Pseudonymizer) -> None:
    """Only msisdn, imsi and imei have derived keys."""
    with pytest.raises(ValueError, match="identifier type"):
        pseudonymizer.pseudonym("marketing", "email", "a@b")
    with pytest.raises(ValueError, match="identifier type"):
        pseudonymizer.derived_key("marketing", "email")


def test_the_derived_key_is_the_one_the_pseudonyms_use(pseudonymizer: Pseudonymizer) -> None:
    """derived_key (what native.py hands the compiled engine) is the contract's HKDF output,
    one per purpose and identifier type, and HMAC under it gives the Python pseudonyms."""
    keys = set()
    for purpose in ("marketing", "fraud_prevention"):
        for id_type, value in (("msisdn", SERVED), ("imsi", "240011234567890")):
            key = pseudonymizer.derived_key(purpose, id_type)
            expected = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=b"cdrveil/pseudonym/v1",
                info=f"{purpose}/{id_type}".encode(),
            ).derive(SECRET)
            assert key == expected
            digest = hmac.new(key, value.encode(), hashlib.sha256).digest()[:16]
            body = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            assert pseudonymizer.pseudonym(purpose, id_type, value) == f"{KEY_ID}:{body}"
            keys.add(key)
    assert len(keys) == 4


# --- init, load refusals ---------------------------------------------------------------------


def test_init_creates_an_owner_only_keyring(tmp_path: Path) -> None:
    """keys init writes a 0600 file holding one 32-byte epoch, which then loads."""
    path = tmp_path / "new.keyring.json"
    created = Keyring.init(path, "k1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Keyring.load(path)
    assert loaded.active == created.active == "k1"
    assert len(loaded.active_secret) >= 32
    assert loaded.active_secret == created.active_secret


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    """An existing keyring is never replaced by init (that would lose keys)."""
    path = write_keyring(tmp_path / "k.json")
    before = path.read_bytes()
    with pytest.raises(KeyringError, match="already exists"):
        Keyring.init(path)
    assert path.read_bytes() == before


def test_two_inits_make_different_secrets(tmp_path: Path) -> None:
    """There is no built-in or default key."""
    first = Keyring.init(tmp_path / "a.json").active_secret
    second = Keyring.init(tmp_path / "b.json").active_secret
    assert first != second


def test_load_refuses_a_missing_keyring_and_says_how_to_create_one(tmp_path: Path) -> None:
    """The message names the fix: cdrveil keys init."""
    with pytest.raises(KeyringError, match="cdrveil keys init"):
        Keyring.load(tmp_path / "absent.json")


@pytest.mark.parametrize("path", [None, ""])
def test_load_refuses_no_configured_path(path: str | None) -> None:
    """No path, no keys: there is no default."""
    with pytest.raises(KeyringError, match="cdrveil keys init"):
        Keyring.load(path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o606])
def test_load_refuses_a_keyring_open_to_group_or_others(tmp_path: Path, mode: int) -> None:
    """Group/other permission bits are refused, and the message says to chmod."""
    path = write_keyring(tmp_path / "k.json", mode=mode)
    with pytest.raises(KeyringError, match="chmod 600"):
        Keyring.load(path)


def test_load_refuses_a_path_that_is_not_a_regular_file(tmp_path: Path) -> None:
    """A directory (e.g. a mis-mounted secret volume) is refused, not read."""
    with pytest.raises(KeyringError, match="not a regular file"):
        Keyring.load(tmp_path)


def test_load_refuses_a_short_key(tmp_path: Path) -> None:
    """Keys under 32 bytes are refused."""
    path = write_keyring(tmp_path / "k.json", {KEY_ID: bytes(range(31))})
    with pytest.raises(KeyringError, match="at least 32"):
        Keyring.load(path)


def test_load_refuses_an_active_id_not_in_the_ring(tmp_path: Path) -> None:
    """The active key must be one the keyring holds."""
    path = write_keyring(tmp_path / "k.json", {KEY_ID: SECRET}, active="k9")
    with pytest.raises(KeyringError, match="does not hold"):
        Keyring.load(path)


def test_load_refuses_a_shredded_active_key(tmp_path: Path) -> None:
    """A shredded epoch cannot be active; the message says to rotate."""
    path = write_keyring(tmp_path / "k.json", {"k1": SECRET, "k2": None}, active="k2")
    with pytest.raises(KeyringError, match="rotate"):
        Keyring.load(path)


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"format": "other", "active": "k1", "keys": {}}',
        b'{"format": "cdrveil-keyring/1", "active": "k1", "keys": {}}',
        b'{"format": "cdrveil-keyring/1", "active": "k1", "keys": {"k1": {"secret": "***"}}}',
        b'{"format": "cdrveil-keyring/1", "active": "K1", "keys": {"K1": {"secret": "'
        + SECRET_B64.encode()
        + b'"}}}',
    ],
)
def test_load_refuses_malformed_keyrings(tmp_path: Path, content: bytes) -> None:
    """Bad JSON, wrong format, no keys, bad base64 and bad key ids are refused."""
    path = tmp_path / "k.json"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(KeyringError):
        Keyring.load(path)


def secret_forms(secret: bytes) -> list[str]:
    """The ways a secret could show up in text."""
    return [
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode(),
        secret.hex(),
        repr(secret),
        base64.b64encode(secret).decode()[:16],
    ]


@pytest.mark.parametrize(
    ("secrets", "active", "mode"),
    [
        ({KEY_ID: SECRET}, KEY_ID, 0o644),
        ({KEY_ID: SECRET[:31]}, KEY_ID, 0o600),
        ({KEY_ID: SECRET}, "k9", 0o600),
        ({KEY_ID: SECRET, "k0": None}, "k0", 0o600),
    ],
)
def test_no_error_message_contains_the_secret(
    tmp_path: Path, secrets: dict[str, bytes | None], active: str, mode: int
) -> None:
    """Refusals describe the problem, never the key material."""
    path = write_keyring(tmp_path / "k.json", secrets, active=active, mode=mode)
    with pytest.raises(KeyringError) as caught:
        Keyring.load(path)
    text = str(caught.value) + repr(caught.value)
    for form in secret_forms(SECRET) + secret_forms(SECRET[:31]):
        assert form not in text


def test_no_repr_contains_the_secret(keyring: Keyring, pseudonymizer: Pseudonymizer) -> None:
    """Keyring, epochs, pseudonymizers and their describe() output never show the secret."""
    texts = [
        repr(keyring),
        str(keyring),
        repr(keyring.epochs),
        repr(pseudonymizer),
        repr(pseudonymizer.for_purpose("marketing", "msisdn")),
        repr(keyring.describe()),
    ]
    for text in texts:
        for form in secret_forms(SECRET):
            assert form not in text


# --- rotate and shred ------------------------------------------------------------------------


def test_rotate_starts_new_unlinkable_pseudonyms(tmp_path: Path) -> None:
    """After rotation pseudonyms carry the new key id and share nothing with the old ones."""
    keyring = Keyring.load(write_keyring(tmp_path / "k.json"))
    old = Pseudonymizer(keyring).pseudonym("marketing", "msisdn", SERVED)
    rotated = keyring.rotate("k2026-12")
    new = Pseudonymizer(Keyring.load(tmp_path / "k.json")).pseudonym("marketing", "msisdn", SERVED)
    assert rotated.active == "k2026-12"
    assert new.startswith("k2026-12:")
    assert old.startswith(KEY_ID + ":")
    assert new.split(":")[1] != old.split(":")[1]
    assert stat.S_IMODE((tmp_path / "k.json").stat().st_mode) == 0o600


def test_rotate_keeps_the_old_epoch_until_it_is_shredded(tmp_path: Path) -> None:
    """The retired epoch stays in the ring (and can reproduce its pseudonyms) until shred."""
    keyring = Keyring.load(write_keyring(tmp_path / "k.json")).rotate("k2")
    reloaded = Keyring.load(tmp_path / "k.json")
    assert reloaded.epochs[KEY_ID].secret == SECRET
    assert {row["keyId"]: row["status"] for row in reloaded.describe()} == {
        KEY_ID: "retired",
        "k2": "active",
    }
    assert keyring.active == "k2"


def test_rotate_refuses_an_existing_key_id(tmp_path: Path) -> None:
    """Key ids are never reused (a reused id would make pseudonyms ambiguous)."""
    keyring = Keyring.load(write_keyring(tmp_path / "k.json"))
    with pytest.raises(KeyringError, match="already"):
        keyring.rotate(KEY_ID)


def test_shred_destroys_the_secret_for_good(tmp_path: Path) -> None:
    """After shred the file holds no trace of the secret, and the old pseudonyms cannot be made."""
    path = write_keyring(tmp_path / "k.json")
    keyring = Keyring.load(path)
    old = Pseudonymizer(keyring).pseudonym("marketing", "msisdn", SERVED)
    keyring.rotate("k2").shred(KEY_ID)
    content = path.read_bytes()
    for form in secret_forms(SECRET):
        assert form.encode() not in content
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]  # no temporary copy left behind
    reloaded = Keyring.load(path)
    assert reloaded.epochs[KEY_ID].secret is None
    assert reloaded.epochs[KEY_ID].shredded_at
    assert {row["keyId"]: row["status"] for row in reloaded.describe()}[KEY_ID] == "shredded"
    # No epoch left in the ring reproduces the old pseudonym, under any key id.
    for epoch in reloaded.epochs.values():
        if epoch.secret is not None:
            candidate = expected_pseudonym(epoch.secret, KEY_ID, "marketing", "msisdn", SERVED)
            assert candidate != old


def test_shred_refuses_the_active_key(tmp_path: Path) -> None:
    """Shredding the active key would stop the pipeline; rotate first."""
    keyring = Keyring.load(write_keyring(tmp_path / "k.json"))
    with pytest.raises(KeyringError, match="rotate"):
        keyring.shred(KEY_ID)
    assert Keyring.load(tmp_path / "k.json").epochs[KEY_ID].secret == SECRET


def test_shred_refuses_an_unknown_key(tmp_path: Path) -> None:
    """Shredding a key id that is not there is an error, not a silent no-op."""
    keyring = Keyring.load(write_keyring(tmp_path / "k.json"))
    with pytest.raises(KeyringError, match="not in the keyring"):
        keyring.shred("k404")
