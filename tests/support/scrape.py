"""A worker's HTTP endpoints as a test reads them: status and body, Prometheus samples."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

from pipeline.harness import WorkerProcess

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(port: int, path: str) -> tuple[int, bytes]:
    """Status and body of ``GET http://127.0.0.1:PORT/PATH``; (0, b"") if nothing answers."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def scrape(port: int) -> Samples:
    """Every sample of ``/metrics``, parsed as Prometheus would, by name and labels."""
    status, body = get(port, "/metrics")
    assert status == 200, body[:300]
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; a KeyError names a missing series."""
    return samples[(name, frozenset(labels.items()))]


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """The values of ``name``'s series, summed per value of ``label``."""
    totals: dict[str, float] = defaultdict(float)
    for (sample_name, labels), sample_value in samples.items():
        if sample_name == name:
            totals[dict(labels)[label]] += sample_value
    return dict(totals)


async def wait_until_ready(worker: WorkerProcess, port: int, within: float = 60.0) -> None:
    """Poll ``/readyz`` until it answers 200 (the worker must keep running)."""
    await worker.wait_ready(within, port)
