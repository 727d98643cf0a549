"""``cdrveil ingest``: TS 32.297 CDR files from the network into ``cdr.voice`` / ``cdr.sms``.

Each file is decoded by ``pipeline.ber`` (the file layout, then each BER record to the
JSON record of the topics, numbers with the settings' country code and trunk prefix, a
location without MCC-MNC in the first home network). Records go to ``cdr.voice`` or
``cdr.sms`` (key: the served MSISDN as the record carries it, or none), every rejected
CDR or damaged stretch to ``traffic.dead-letter`` with the file's octets from its offset
(a CDR's header and record, or the stretch: ``pipeline.ber.reader``) and the headers
``dlq.error.code``, ``dlq.error.message``, ``dlq.source.file`` (base name),
``dlq.source.offset`` (byte offset in the file), ``dlq.timestamp`` and
``cdrveil.version``.

Guarantees:

- **Done only when acknowledged.** Messages go out in windows; the resume state beside
  the file (``FILE.cdrveil-ingest.json``, see ``state.py``) moves to a window's end only
  once the broker has acknowledged all of it, and says ``done`` only after the last one.
- **Resume.** A run on a file with a state continues at its offset (the content up to it
  is checked by SHA-256; a mismatch starts over). After a clean stop nothing is lost or
  repeated; after a hard kill at most the windows in flight (three, of ``--window`` CDRs)
  are repeated, with the same ``recordId``, so downstream de-duplicates. A file whose
  state says done is skipped.
- **Decoding processes.** ``--jobs N`` (default: one per core, at most 2) decode in
  worker processes while the command publishes; ``--jobs 0`` decodes in the command.
- **Watch mode.** ``--watch DIR`` takes a file once its size and mtime have not changed
  for ``--settle`` seconds (hidden, ``.tmp`` and ``.part`` names are never taken, so
  write-then-rename works too), and moves each done file to ``--done-dir`` (default
  ``DIR/done``), then deletes its state.
- **Exit status.** 0: every file done (rejected records are data, they are in the
  dead-letter topic); 1: a file could not be ingested; 2: configuration; 3: Kafka
  unreachable or refusing messages; 130: stopped by SIGINT/SIGTERM with work left (the
  state is saved: run the same command again). A watcher stopped while idle exits 0.

Modules: ``run`` (the entry points ``ingest_files``, ``watch_directory``, ``run_ingest``),
``publish`` (one file into Kafka), ``decoding`` (windows of items, here or in worker
processes), ``state`` (the resume state), ``selection`` (closed files, the done folder),
``report`` (the summary and exit status). This package imports nothing itself, so that a
decoding worker process starts without loading Kafka clients.
"""
