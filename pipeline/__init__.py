"""cdrveil: consent-aware pseudonymization and routing of telecom traffic records.

Packages, and what each may import:

- ``core``: the pure decisions (decode, normalize, consent, warrants, keys, policy,
  engine); imports nothing else of cdrveil but ``errors`` and ``defaults``, and never
  faust or aiokafka.
- ``ber``: TS 32.297 files of BER TS 32.298 records to JSON records; pure.
- ``synth``: synthetic subscribers, consent, warrants and traffic; pure.
- ``shell``: Kafka: topics, clients, the embedded broker, tables, the worker.
- ``ingest``: ``cdrveil ingest``, CDR files into the record topics.
- ``tools``: ``demo``, ``replay``, ``generate``.
- ``reports``: ``explain`` and ``ropa``, for the DPO.
- ``cli``: the ``cdrveil`` command line; may import all of the above.

At the root: ``settings`` (every ``CDRVEIL_*`` setting, read once), ``defaults`` (the
defaults the pure packages share with it), ``errors`` (the error hierarchy), ``factory``
(the engine built from settings) and ``progress`` (the progress line of long commands).
"""

__version__ = "0.1.0"
