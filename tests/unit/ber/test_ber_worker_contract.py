"""Records decoded from BER are accepted by the worker's JSON decoder, identities intact."""

from __future__ import annotations

import orjson
import pytest

from pipeline.ber import BerRecordDecoder
from pipeline.core.decode import CdrRecord, Decoder
from pipeline.core.normalize import MsisdnNormalizer
from tests.support.ber_samples import SAMPLES, Sample

BER = BerRecordDecoder(trunk_prefix="0", country_code="46", default_mcc_mnc="24001")
WORKER = Decoder(MsisdnNormalizer(country_code="46", trunk_prefix="0"))


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_the_worker_accepts_every_decoded_record(sample: Sample) -> None:
    record = BER(sample.ber, "MSC01.dat:54")
    assert isinstance(record, dict)
    accepted = WORKER(orjson.dumps(record))
    assert isinstance(accepted, CdrRecord), accepted


def test_national_and_international_forms_normalize_to_the_same_subscriber() -> None:
    national, international = SAMPLES[1], SAMPLES[0]  # 0701234567 and 46701234567
    numbers = []
    for sample in (national, international):
        record = BER(sample.ber, "f:1")
        assert isinstance(record, dict)
        numbers.append(WORKER.msisdn(str(record["servedMSISDN"])))
    assert numbers == ["46701234567", "46701234567"]
