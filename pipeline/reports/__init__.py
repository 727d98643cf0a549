"""Reports for the data protection officer: ``explain`` (one record's decisions) and
``ropa`` (the GDPR Art. 30 record of processing, from the policy).

Pure code: they read the policy and run the reference engine, never Kafka. May import
``core`` and ``errors`` only.
"""
