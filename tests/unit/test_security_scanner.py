"""The canary scanner of ``soak.canary`` can fail: it finds what it looks for, and only that."""

from __future__ import annotations

import base64
import hashlib

from soak.canary import Scanner, canaries, imei_forms, msisdn_forms


def test_every_input_form_of_every_identity_is_found() -> None:
    """Each MSISDN, IMSI and IMEI form, quoted in JSON or written in a log line."""
    bird = canaries(1, ())[0]
    scanner = Scanner([bird])
    for form in [*msisdn_forms(bird.msisdn), bird.imsi, bird.imsi[5:], *imei_forms(bird.imei)]:
        assert scanner.canaries_in(b'{"x":"' + form.encode() + b'"}'), form
        assert scanner.canaries_in(b"offset 7 " + form.encode() + b" in a log line"), form


def test_other_numbers_and_a_type_allocation_code_are_not_canaries() -> None:
    """The IMEI's first 8 digits name a handset model, not a person."""
    bird = canaries(1, ())[0]
    scanner = Scanner([bird])
    assert not scanner.canaries_in(b'{"servedIMEI":"' + bird.imei[:8].encode() + b'"}')
    assert not scanner.canaries_in(b"46700000000 2026-11-21T05:00:00Z offset 1234567")


def test_unkeyed_sha256_digests_of_an_identity_are_found_whole_or_truncated() -> None:
    """Hex and base64url, whole or cut to 128 bits, alone or after a key id."""
    bird = canaries(1, ())[0]
    scanner = Scanner([bird])
    digest = hashlib.sha256(bird.msisdn.encode()).digest()
    assert scanner.digests_in(digest.hex().encode())
    assert scanner.digests_in(b"k1:" + digest.hex()[:32].encode())
    assert scanner.digests_in(b"k1:" + base64.urlsafe_b64encode(digest[:16]).rstrip(b"="))
    assert not scanner.digests_in(b"k1:" + base64.urlsafe_b64encode(bytes(16)).rstrip(b"="))
