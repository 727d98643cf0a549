"""What the tests share that is not a fixture: data builders, fakes and helpers.

Test modules import from here (``from tests.support.core import mo_call``), never from
each other or from a ``conftest``; fixtures live in the ``conftest.py`` of their folder.

- ``core``: records, consent and warrants for the pure core; strategies for properties.
- ``ber_samples``: BER CDRs written by hand, octet by octet.
- ``ingest``: JSON records, the BER files built from them, helpers of the ingest tests.
- ``kafka``: producing test inputs; the topics and helpers the worker tests share.
- ``scrape``: a worker's HTTP endpoints as a test reads them.
- ``schemas``: the JSON schemas of ``schemas/``, loaded for validation.
- ``properties``: how many examples each hypothesis property runs.
- ``fake_worker``: a real worker process with a stand-in engine (``python -m``).
"""
