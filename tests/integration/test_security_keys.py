"""Keys, end to end through ``python -m pipeline worker`` and the ``cdrveil keys`` commands:
the worker refuses an unsafe keyring without printing key material; rotation and shredding
do what the README promises to the pseudonyms on the topics."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.core.keys import Keyring, Pseudonymizer
from pipeline.core.linkage import source_ids
from pipeline.harness import read_all
from pipeline.settings import Settings
from pipeline.shell.messages import header
from pipeline.shell.offsets import wait_until_committed
from pipeline.shell.topics import TopicNames
from soak.harness import create_all_topics
from tests.support.kafka import ROOT, produce

# The legitimate-interest purposes: they get the records of subscribers who did not consent,
# keyed by the purpose's pseudonym of the served MSISDN.
PSEUDONYMIZED = ("fraud_prevention", "network_planning")
SUBSCRIBERS = [f"4670{i:07d}" for i in range(1_000_001, 1_000_041)]


# -- refusing to start ----------------------------------------------------------------------


def key_material(path: Path) -> list[bytes]:
    """Every way a secret of this keyring could be printed (whole or in part)."""
    if not path.exists():
        return []
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return []
    needles: list[bytes] = []
    for entry in doc.get("keys", {}).values():
        encoded = entry.get("secret")
        if not encoded:
            continue
        raw = base64.b64decode(encoded)
        for text in (
            base64.b64encode(raw),
            base64.urlsafe_b64encode(raw),
            base64.b64encode(raw).rstrip(b"="),
            raw.hex().encode(),
        ):
            needles += [text[i : i + 12] for i in range(0, len(text) - 11, 6)]
        needles.append(raw)
    return needles


def drop_privileges() -> list[str]:
    """A command prefix that runs the worker without root's power to read any file.

    As root, a mode-000 file is still readable (CAP_DAC_OVERRIDE); the worker's check
    passes (no group/other bits) and it would start. A real deployment runs the worker as
    an unprivileged user, so the test takes those two capabilities away.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "running as root: setpriv (util-linux) is needed to drop caps"
    caps = "-dac_override,-dac_read_search"
    return [setpriv, "--bounding-set", caps, "--inh-caps", caps]


def start_refused(env_keyring: str | None, prefix: list[str] | None = None) -> tuple[int, bytes]:
    """Run a worker that should refuse to start; its exit status and all its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDRVEIL_")}
    # Nothing listens here: a worker that got past its keyring would retry forever.
    env.update(CDRVEIL_BOOTSTRAP_SERVERS="127.0.0.1:9", CDRVEIL_WEB_PORT="0")
    if env_keyring is not None:
        env["CDRVEIL_KEYRING_PATH"] = env_keyring
    try:
        done = subprocess.run(
            [*(prefix or []), sys.executable, "-m", "pipeline", "worker"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the worker started instead of refusing: {exc.output!r}")
    return done.returncode, done.stdout + done.stderr


def keyring_with(path: Path, **change: Any) -> Path:
    """A valid keyring file, then changed: ``secret=bytes``, ``active=str``, ``shred=True``."""
    Keyring.init(path)
    doc = orjson.loads(path.read_bytes())
    if "secret" in change:
        doc["keys"]["k1"]["secret"] = base64.b64encode(change["secret"]).decode()
    if "active" in change:
        doc["active"] = change["active"]
    if change.get("shred"):
        del doc["keys"]["k1"]["secret"]
        doc["keys"]["k1"]["shreddedAt"] = "2026-11-21T05:00:00Z"
    path.write_bytes(orjson.dumps(doc))
    path.chmod(change.get("mode", 0o600))
    return path


Case = Callable[[Path], str | None]

CASES: dict[str, tuple[Case, tuple[bytes, ...]]] = {
    "no keyring configured": (lambda d: None, (b"no keyring configured", b"cdrveil keys init")),
    "keyring file missing": (
        lambda d: str(d / "absent.json"),
        (b"does not exist", b"cdrveil keys init"),
    ),
    "readable by group": (
        lambda d: str(keyring_with(d / "k.json", mode=0o640)),
        (b"readable or writable by group or others", b"chmod 600"),
    ),
    "readable by others": (
        lambda d: str(keyring_with(d / "k.json", mode=0o604)),
        (b"readable or writable by group or others", b"chmod 600"),
    ),
    "key shorter than 32 bytes": (
        lambda d: str(keyring_with(d / "k.json", secret=os.urandom(16))),
        (b"at least 32", b"cdrveil keys rotate"),
    ),
    "active key not in the ring": (
        lambda d: str(keyring_with(d / "k.json", active="k9")),
        (b"active key that it does not hold", b"cdrveil keys"),
    ),
    "active key shredded": (
        lambda d: str(keyring_with(d / "k.json", shred=True)),
        (b"has been shredded", b"cdrveil keys rotate"),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_worker_refuses_an_unsafe_keyring_says_how_to_fix_it_and_prints_no_key(
    case: str, tmp_path: Path
) -> None:
    """Non-zero exit, a message with the fix, and not one piece of the secret."""
    make, fixes = CASES[case]
    keyring = make(tmp_path)
    code, output = start_refused(keyring)
    assert code != 0, output
    for fix in fixes:
        assert fix in output, output
    for needle in key_material(Path(keyring)) if keyring else []:
        assert needle not in output, f"key material in the worker's output: {output!r}"


def test_the_worker_refuses_a_keyring_it_cannot_read(tmp_path: Path) -> None:
    """chmod 000: as an ordinary user the read fails; the message names the file and the fix
    (root's capabilities are dropped for this run, see ``drop_privileges``)."""
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o711)
    keyring = keyring_with(folder / "k.json", mode=0o000)
    code, output = start_refused(str(keyring), drop_privileges())
    assert code != 0, output
    assert b"cannot be read" in output, output
    assert str(keyring).encode() in output
    assert b"check its owner" in output, output
    keyring.chmod(0o600)
    for needle in key_material(keyring):
        assert needle not in output


# -- rotation and shredding, through the worker ---------------------------------------------


def sms(record_id: str, msisdn: str) -> bytes:
    """An MO SMS of a subscriber with no consent (so every analytics output pseudonymizes)."""
    return orjson.dumps(
        {
            "recordId": record_id,
            "recordType": "moSMSRecord",
            "servedMSISDN": f"0{msisdn[2:]}",
            "servedIMSI": f"24001{msisdn[-10:]}",
            "originationTime": "2026-11-21T05:00:00Z",
            "destinationNumber": "0046709999999",
        }
    )


def keyed_sources(keyring: Path, tag: str) -> dict[str, str]:
    """Keyed record id -> source id of this tag's records, under every epoch with a secret
    (a running worker keeps its epoch after a rotation until it restarts)."""
    ring = Keyring.load(keyring)
    ids = [f"{tag}-{m}" for m in SUBSCRIBERS]
    sources: dict[str, str] = {}
    for key_id, epoch in ring.epochs.items():
        if epoch.secret is not None:
            keys = Pseudonymizer(Keyring(ring.path, key_id, ring.epochs))
            sources.update(source_ids(keys, PSEUDONYMIZED, ids))
    return sources


async def pseudonyms(
    settings: Settings, producer: AIOKafkaProducer, tag: str, keyring: Path
) -> dict[tuple[str, str], tuple[str, bytes]]:
    """Send one record per subscriber; (purpose, msisdn) -> (pseudonym, key-id header)."""
    names = TopicNames(settings.topic_prefix)
    await produce(
        producer, names.inputs[1], [(m.encode(), sms(f"{tag}-{m}", m)) for m in SUBSCRIBERS]
    )
    await wait_until_committed(settings, settings.group_id, list(names.inputs), 60)
    found: dict[tuple[str, str], tuple[str, bytes]] = {}
    sources = keyed_sources(keyring, tag)
    for purpose in PSEUDONYMIZED:
        for message in await read_all(settings, [names(f"traffic.analytics.{purpose}")]):
            keyed = (header(message, "cdrveil.record-id") or b"").decode()
            record_id = sources.get(keyed, "")
            if record_id.startswith(f"{tag}-"):
                key_id = header(message, "cdrveil.key-id") or b""
                found[(purpose, record_id.split("-", 1)[1])] = (message.key.decode(), key_id)
    assert len(found) == len(PSEUDONYMIZED) * len(SUBSCRIBERS)
    return found


def cli(*args: str) -> str:
    """Run ``python -m pipeline ARGS``; its standard output (exit 0 required)."""
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("CDRVEIL_")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.asyncio(loop_scope="session")
async def test_rotation_starts_unlinkable_pseudonyms_and_shredding_makes_old_ones_unreproducible(
    settings: Settings, producer: AIOKafkaProducer, real_worker: Any, keyring: Path
) -> None:
    """keys rotate + restart: new key id, no pseudonym shared with the old epoch; keys shred:
    no secret left in the ring reproduces any old pseudonym (the old key could, before)."""
    await create_all_topics(settings)
    worker = real_worker(settings)
    await worker.wait_for_log("assigned", within=60)
    old = await pseudonyms(settings, producer, "a", keyring)
    assert {key_id for _, key_id in old.values()} == {b"k1"}
    assert all(p.startswith("k1:") for p, _ in old.values())
    before_shred = Pseudonymizer(Keyring.load(keyring))
    for (purpose, msisdn), (pseudonym, _) in old.items():
        assert before_shred.pseudonym(purpose, "msisdn", msisdn) == pseudonym

    assert "new active key k2" in cli("keys", "rotate", "--keyring", str(keyring))
    still = await pseudonyms(settings, producer, "b", keyring)
    assert still == old, "a running worker keeps its epoch until it is restarted"
    assert worker.stop() == 0
    worker = real_worker(settings)
    await worker.wait_for_log("assigned", within=60)
    new = await pseudonyms(settings, producer, "c", keyring)
    assert {key_id for _, key_id in new.values()} == {b"k2"}
    assert all(p.startswith("k2:") for p, _ in new.values())
    old_bodies = {p.split(":", 1)[1] for p, _ in old.values()}
    new_bodies = {p.split(":", 1)[1] for p, _ in new.values()}
    assert len(new_bodies) == len(new), "distinct people and purposes, distinct pseudonyms"
    assert not old_bodies & new_bodies, "a new-epoch pseudonym equals an old one"
    assert worker.stop() == 0

    secret = base64.b64encode(Keyring.load(keyring).epochs["k1"].secret or b"")
    assert "shredded" in cli("keys", "shred", "k1", "--keyring", str(keyring))
    shredded = Keyring.load(keyring)
    assert shredded.epochs["k1"].secret is None
    assert secret not in keyring.read_bytes()  # noqa: ASYNC240 - a small file, in a test
    # Every secret still in the ring, under every purpose and identifier type:
    for epoch in shredded.epochs.values():
        if epoch.secret is None:
            continue
        ring = Keyring(keyring, epoch.key_id, {epoch.key_id: epoch})
        again = Pseudonymizer(ring)
        for purpose in PSEUDONYMIZED:
            for id_type in ("msisdn", "imsi", "imei"):
                for msisdn in SUBSCRIBERS:
                    body = again.pseudonym(purpose, id_type, msisdn).split(":", 1)[1]
                    assert body not in old_bodies
