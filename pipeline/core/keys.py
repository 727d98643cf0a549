"""The keyring (named key epochs) and the keyed pseudonymizer.

Pseudonym = the first 128 bits of HMAC-SHA-256 under a key derived with HKDF
from the active epoch's secret, separately for each purpose and identifier
type, so pseudonyms of two purposes (or two types) cannot be joined. Each
pseudonym carries its epoch's key id; a new epoch starts unlinkable
pseudonyms, and shredding an epoch's secret makes its pseudonyms impossible
to reproduce (crypto-shredding).

Key material is never printed, logged or put in an exception message.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pipeline.core.cache import TwoGenerationCache
from pipeline.errors import KeyringError

FORMAT: Final = "cdrveil-keyring/1"
MIN_SECRET_BYTES: Final = 32
NEW_SECRET_BYTES: Final = 32
PSEUDONYM_BYTES: Final = 16
_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")
HKDF_SALT: Final = b"cdrveil/pseudonym/v1"
KEY_ID_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
#: "party": another party's number that is no MSISDN (``party.py``), in its own key domain.
ID_TYPES: Final = ("msisdn", "imsi", "imei", "party")
#: The identifier type of the keyed record ids on analytics routes: its own derived key per
#: purpose, so a purpose's record ids join neither another purpose's nor its own pseudonyms.
RECORD_ID_TYPE: Final = "record-id"
_CACHE_LIMIT: Final = 1 << 17

_FIX_INIT = "create one with `cdrveil keys init --keyring PATH`"


@dataclass(frozen=True)
class KeyEpoch:
    """One key epoch. ``secret`` is ``None`` once the epoch has been shredded."""

    key_id: str
    created_at: str
    secret: bytes | None = field(repr=False)
    shredded_at: str | None = None


@dataclass(frozen=True)
class Keyring:
    """Named key epochs and which one is active. Never printed with its secrets."""

    path: Path
    active: str
    epochs: dict[str, KeyEpoch]

    @property
    def active_secret(self) -> bytes:
        """The active epoch's secret (load() guarantees it exists)."""
        secret = self.epochs[self.active].secret
        if secret is None:  # pragma: no cover - load() refuses this state
            raise KeyringError("the active key epoch has been shredded")
        return secret

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None) -> Keyring:
        """Read and check a keyring file; refuse anything unsafe with a fix in the message."""
        if path is None or str(path) == "":
            raise KeyringError(
                f"no keyring configured: set CDRVEIL_KEYRING_PATH or --keyring, or {_FIX_INIT}"
            )
        keyring_path = Path(path)
        try:
            info = keyring_path.stat()
        except FileNotFoundError:
            raise KeyringError(f"keyring {keyring_path} does not exist: {_FIX_INIT}") from None
        except OSError as exc:
            raise KeyringError(f"keyring {keyring_path} cannot be read ({exc.strerror})") from None
        if not stat.S_ISREG(info.st_mode):
            raise KeyringError(f"keyring {keyring_path} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyringError(
                f"keyring {keyring_path} is readable or writable by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}): run `chmod 600 {keyring_path}`"
            )
        try:
            raw = keyring_path.read_bytes()
        except OSError as exc:
            raise KeyringError(
                f"keyring {keyring_path} cannot be read ({exc.strerror}): check its owner"
            ) from None
        return cls._parse(keyring_path, raw)

    @classmethod
    def _parse(cls, path: Path, raw: bytes) -> Keyring:
        try:
            doc: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise KeyringError(f"keyring {path} is not valid JSON") from None
        if type(doc) is not dict or doc.get("format") != FORMAT:
            raise KeyringError(f"keyring {path} is not a {FORMAT} file")
        keys = doc.get("keys")
        if type(keys) is not dict or not keys:
            raise KeyringError(f"keyring {path} holds no keys: {_FIX_INIT}")
        epochs = {key_id: _epoch(path, key_id, entry) for key_id, entry in keys.items()}
        active = doc.get("active")
        if type(active) is not str or active not in epochs:
            raise KeyringError(
                f"keyring {path} names an active key that it does not hold: "
                "run `cdrveil keys list` and `cdrveil keys rotate`"
            )
        if epochs[active].secret is None:
            raise KeyringError(
                f"keyring {path}: the active key {active} has been shredded; "
                "run `cdrveil keys rotate` to start a new epoch"
            )
        return cls(path, active, epochs)

    def _document(self) -> dict[str, Any]:
        keys: dict[str, Any] = {}
        for key_id, epoch in self.epochs.items():
            entry: dict[str, Any] = {"createdAt": epoch.created_at}
            if epoch.secret is not None:
                entry["secret"] = base64.b64encode(epoch.secret).decode("ascii")
            if epoch.shredded_at is not None:
                entry["shreddedAt"] = epoch.shredded_at
            keys[key_id] = entry
        return {"format": FORMAT, "active": self.active, "keys": keys}

    def save(self) -> None:
        """Write the keyring atomically, readable by its owner only."""
        _write_private(self.path, orjson.dumps(self._document(), option=orjson.OPT_INDENT_2))

    @classmethod
    def init(cls, path: str | os.PathLike[str], key_id: str | None = None) -> Keyring:
        """Create a new keyring with one fresh epoch; refuse to overwrite an existing file."""
        keyring_path = Path(path)
        if keyring_path.exists():
            raise KeyringError(
                f"{keyring_path} already exists; refusing to overwrite keys "
                "(use `cdrveil keys rotate` to add an epoch)"
            )
        key_id = _checked_id(key_id or "k1")
        epoch = KeyEpoch(key_id, _now(), secrets.token_bytes(NEW_SECRET_BYTES))
        keyring = cls(keyring_path, key_id, {key_id: epoch})
        keyring.save()
        return keyring

    def rotate(self, key_id: str | None = None) -> Keyring:
        """Add a fresh epoch, make it active and save; returns the new keyring."""
        key_id = _checked_id(key_id or f"k{len(self.epochs) + 1}")
        if key_id in self.epochs:
            raise KeyringError(f"key id {key_id} is already in the keyring; choose another")
        epochs = dict(self.epochs)
        epochs[key_id] = KeyEpoch(key_id, _now(), secrets.token_bytes(NEW_SECRET_BYTES))
        rotated = Keyring(self.path, key_id, epochs)
        rotated.save()
        return rotated

    def shred(self, key_id: str) -> Keyring:
        """Destroy an epoch's secret for good (its pseudonyms become unlinkable) and save."""
        epoch = self.epochs.get(key_id)
        if epoch is None:
            raise KeyringError(f"key id {key_id} is not in the keyring (see `cdrveil keys list`)")
        if key_id == self.active:
            raise KeyringError(
                f"{key_id} is the active key; run `cdrveil keys rotate` first, then shred it"
            )
        if epoch.secret is None:
            return self
        epochs = dict(self.epochs)
        epochs[key_id] = KeyEpoch(key_id, epoch.created_at, None, _now())
        shredded = Keyring(self.path, self.active, epochs)
        shredded.save()
        return shredded

    def describe(self) -> list[dict[str, str]]:
        """Key ids, creation times and status; never the secrets."""
        rows = []
        for key_id, epoch in self.epochs.items():
            status = "shredded" if epoch.secret is None else "retired"
            if key_id == self.active:
                status = "active"
            row = {"keyId": key_id, "createdAt": epoch.created_at, "status": status}
            if epoch.shredded_at:
                row["shreddedAt"] = epoch.shredded_at
            rows.append(row)
        return rows


def _epoch(path: Path, key_id: object, entry: object) -> KeyEpoch:
    if type(key_id) is not str or not KEY_ID_PATTERN.match(key_id):
        raise KeyringError(f"keyring {path}: a key id does not match {KEY_ID_PATTERN.pattern}")
    if type(entry) is not dict:
        raise KeyringError(f"keyring {path}: key {key_id} is not an object")
    created = entry.get("createdAt")
    created_at = created if type(created) is str else ""
    shredded = entry.get("shreddedAt")
    encoded = entry.get("secret")
    if encoded is None:
        if shredded is None:
            raise KeyringError(f"keyring {path}: key {key_id} has no secret and is not shredded")
        return KeyEpoch(key_id, created_at, None, str(shredded))
    try:
        secret = base64.b64decode(str(encoded), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"keyring {path}: key {key_id} is not valid base64") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise KeyringError(
            f"keyring {path}: key {key_id} is {len(secret)} bytes; keys must be at least "
            f"{MIN_SECRET_BYTES} random bytes: run `cdrveil keys rotate` and shred the short one"
        )
    return KeyEpoch(key_id, created_at, secret)


def _checked_id(key_id: str) -> str:
    if not KEY_ID_PATTERN.match(key_id):
        raise KeyringError(f"key id must match {KEY_ID_PATTERN.pattern}")
    return key_id


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def derive_key(secret: bytes, purpose: str, id_type: str) -> bytes:
    """The HMAC key for one purpose and identifier type (HKDF-SHA-256, domain separated)."""
    info = f"{purpose}/{id_type}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=info).derive(secret)


class PurposePseudonymizer:
    """Pseudonyms for one purpose and identifier type under the active epoch."""

    __slots__ = ("_mac", "_prefix", "cache")

    def __init__(self, key_id: str, key: bytes) -> None:
        self._mac = HMAC(key, hashes.SHA256())
        self._prefix = key_id + ":"
        # Bounded: subscribers repeat, and a keyed HMAC is the transform's main cost.
        self.cache: TwoGenerationCache[str] = TwoGenerationCache(self._compute, _CACHE_LIMIT)

    def _compute(self, value: str) -> str:
        mac = self._mac.copy()
        mac.update(value.encode())
        digest = mac.finalize()[:PSEUDONYM_BYTES]
        # base64url without padding, as urlsafe_b64encode(...).rstrip(b"=") gives, in C.
        encoded = binascii.b2a_base64(digest, newline=False).translate(_URLSAFE)
        return self._prefix + encoded.rstrip(b"=").decode("ascii")

    def __call__(self, value: str) -> str:
        """The pseudonym of a normalized identifier."""
        return self.cache(value)

    def uncached(self, value: str) -> str:
        """The same keyed id, not cached: for values that do not repeat (record ids)."""
        return self._compute(value)


class Pseudonymizer:
    """Keyed pseudonyms for every (purpose, identifier type), from the active epoch."""

    def __init__(self, keyring: Keyring) -> None:
        self.key_id = keyring.active
        self._secret = keyring.active_secret
        self._by_purpose: dict[tuple[str, str], PurposePseudonymizer] = {}

    def __repr__(self) -> str:
        return f"Pseudonymizer(key_id={self.key_id!r})"

    def derived_key(self, purpose: str, id_type: str) -> bytes:
        """The HMAC key of one purpose and identifier type under the active epoch.

        For the compiled engine (``native.py`` hands it these bytes, and it wipes its copy
        when dropped) and for :meth:`for_purpose`. Key material: never log, print or store
        what this returns.
        """
        if id_type not in ID_TYPES and id_type != RECORD_ID_TYPE:
            raise ValueError(f"unknown identifier type {id_type!r}")
        return derive_key(self._secret, purpose, id_type)

    def for_purpose(self, purpose: str, id_type: str) -> PurposePseudonymizer:
        """The pseudonymizer for one purpose and identifier type (built once, then reused)."""
        slot = (purpose, id_type)
        found = self._by_purpose.get(slot)
        if found is None:
            found = PurposePseudonymizer(self.key_id, self.derived_key(purpose, id_type))
            self._by_purpose[slot] = found
        return found

    def pseudonym(self, purpose: str, id_type: str, value: str) -> str:
        """The pseudonym of one normalized identifier for one purpose."""
        return self.for_purpose(purpose, id_type)(value)

    def record_id(self, purpose: str, source_id: str) -> str:
        """The keyed record id one purpose's outputs carry instead of the source's."""
        return self.for_purpose(purpose, RECORD_ID_TYPE).uncached(source_id)
