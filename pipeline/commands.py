"""The Kafka-side subcommands (broker, topics, worker, generate); wired in as they land."""

from __future__ import annotations

import argparse


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the Kafka-side subcommands."""
