"""Prometheus metrics (issue #14): this process's counters and histograms, incremented where
things happen (mailbot.pipeline, mailbot.delivery.outbox, mailbot.service), and the gauges
read from the database at each scrape (`DatabaseCollector`), so outbox states and the
quarantine count are right whichever process changed them.

Names follow the Prometheus naming practices ("Metric and label naming": a `mailbot_`
prefix, base units, `_total` for counters, added by prometheus_client).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from mailbot.clock import as_utc
from mailbot.models import Case, Outbox, RawMessage, ServiceState, still_quarantined
from mailbot.vocabulary import OutboxState

# a `_created` series beside every counter and histogram doubles the scrape for nothing a
# mailbot alert uses (prometheus_client's README, "Disabling _created metrics")
disable_created_metrics()  # type: ignore[no-untyped-call]

# One registry per process (not prometheus_client's global one): what this process did.
REGISTRY = CollectorRegistry(auto_describe=True)

INGESTED = Counter("mailbot_mails_ingested", "Mails handled from the mailbox, by kind and "
                   "ledger state", ["kind", "state"], registry=REGISTRY)
CASES_OPENED = Counter("mailbot_cases_opened", "Cases opened from a new brief",
                       registry=REGISTRY)
SENT = Counter("mailbot_mails_sent", "Outbox send outcomes by kind (Purpose): sent, retry, "
               "failed, uncertain", ["kind", "outcome"], registry=REGISTRY)
SWEEP_SECONDS = Histogram("mailbot_sweep_duration_seconds", "Duration of one mailbox sweep",
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
                          registry=REGISTRY)
IMAP_RECONNECTS = Counter("mailbot_imap_reconnects", "IMAP (IDLE) connections opened again "
                          "after the first one", registry=REGISTRY)
RECEIPT_LATENCY = Histogram("mailbot_receipt_latency_seconds", "From a brief's arrival in "
                            "the mailbox to its receipt accepted by the SMTP server",
                            buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400),
                            registry=REGISTRY)


def ingested(kind: str, state: str, count: int = 1) -> None:
    """`count` mails reached `state` (mailbot.vocabulary.LedgerState) as `kind` ("":
    unknown, never read)."""
    if count:
        INGESTED.labels(kind=kind or "unknown", state=state).inc(count)


def receipt_sent(arrived: datetime, sent: datetime) -> None:
    """A receipt went out at `sent` for a brief that arrived at `arrived` (both UTC)."""
    RECEIPT_LATENCY.observe(max(0.0, (as_utc(sent) - as_utc(arrived)).total_seconds()))


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time: outbox rows by state, quarantined
    mails, cases, and the end of the last completed sweep (service_state, any process)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        with Session(self.engine) as session:
            states = dict(session.exec(select(Outbox.state, func.count())
                                       .group_by(Outbox.state)).all())
            quarantined = session.exec(select(func.count()).select_from(RawMessage).where(
                still_quarantined())).one()
            cases = session.exec(select(func.count()).select_from(Case)).one()
            state = session.get(ServiceState, 1)
        rows = GaugeMetricFamily("mailbot_outbox_rows", "Outbox rows by state", labels=["state"])
        for name in sorted({*OutboxState, *states}):
            rows.add_metric([name], states.get(name, 0))
        yield rows
        yield GaugeMetricFamily("mailbot_quarantined_mails", "Mails quarantined now "
                                "(not released, not deleted)", value=quarantined)
        yield GaugeMetricFamily("mailbot_cases", "Cases in the database", value=cases)
        last = state.last_sweep_at if state is not None else None
        yield GaugeMetricFamily("mailbot_last_sweep_timestamp_seconds", "Unix time of the "
                                "end of the last completed mailbox sweep (0: none yet)",
                                value=as_utc(last).timestamp() if last else 0.0)


def registry_for(engine: Engine) -> CollectorRegistry:
    """A registry for one /metrics endpoint: this process's metrics and `engine`'s gauges."""
    registry = CollectorRegistry()
    for metric in (INGESTED, CASES_OPENED, SENT, SWEEP_SECONDS, IMAP_RECONNECTS,
                   RECEIPT_LATENCY):
        registry.register(metric)
    registry.register(DatabaseCollector(engine))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The Prometheus text format (version 0.0.4) of `registry`."""
    return generate_latest(registry)
