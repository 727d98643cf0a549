"""cdrveil: consent-aware pseudonymization and routing of telecom traffic records."""

__version__ = "0.1.0"
