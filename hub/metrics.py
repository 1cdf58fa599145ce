"""Prometheus metrics: one registry per hub, so tests and several hubs in one process never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.documents = Counter("warnhub_documents_total", "Documents received, by source and outcome",
                                 ["source", "outcome"], registry=self.registry)
        self.identity_conflicts = Counter(
            "warnhub_identity_conflicts_total", "Copies of a stored CAP identity (sender, identifier, sent) with other "
            "content, by source and result (kept: the stored version stays; replaced: the better-signed copy took "
            "its place)", ["source", "result"], registry=self.registry)
        self.ingest_seconds = Histogram("warnhub_ingest_seconds", "Time to validate and store one document",
                                        registry=self.registry,
                                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))
        self.source_up = Gauge("warnhub_source_up", "1 while a source works, 0 while it fails", ["source"],
                               registry=self.registry)
        self.source_last_ok = Gauge("warnhub_source_last_ok_timestamp_seconds",
                                    "Unix time of the last complete, successful fetch per source", ["source"],
                                    registry=self.registry)
        self.threads = Gauge("warnhub_threads", "Incidents (alert threads) by state", ["state"],
                             registry=self.registry)
        self.alerts = Gauge("warnhub_alerts_stored", "Alert versions in the store", registry=self.registry)
        self.rejections = Gauge("warnhub_rejections_stored", "Rejected documents recorded", registry=self.registry)
        self.expired = Counter("warnhub_expired_total", "Threads ended by the expiry sweep", registry=self.registry)
        self.readings = Counter("warnhub_readings_total", "Sensor readings received, by source and outcome "
                                "(stored, duplicate)", ["source", "outcome"], registry=self.registry)
        self.readings_malformed = Counter("warnhub_readings_malformed_total", "Malformed sensor payloads",
                                          ["source", "sensor"], registry=self.registry)
        self.sensor_stale = Gauge("warnhub_sensor_stale", "1 while a sensor is stale or has never reported "
                                  "within its interval, else 0", ["source", "sensor"], registry=self.registry)
        self.decisions = Counter("warnhub_decisions_total", "Alert versions decided by the rules, by decision "
                                 "(publish, suppress, draft, unrouted)", ["decision"], registry=self.registry)
        self.sensor_events = Counter("warnhub_sensor_events_total", "Sensor conditions that fired or cleared "
                                     "(each drafts a warning or all-clear)", ["kind"], registry=self.registry)
        self.rules_refused = Gauge("warnhub_rules_reload_refused", "1 while the last rules reload was refused "
                                   "(the previous rules stay in force)", registry=self.registry)
        self.failures = Counter("warnhub_failures_total", "Failures of one item at a stage (rules: an evaluation "
                                "raised; publish: publishing a decision raised); each is retried with backoff",
                                ["stage"], registry=self.registry)
        self.refused = Counter("warnhub_web_refused_total", "Requests the web refused for a limit (429 or 503 with "
                               "Retry-After: streams, subscriptions, logins), by route and status",
                               ["route", "status"], registry=self.registry)
        self.connections_refused = Gauge("warnhub_web_connections_refused", "Connections closed at accept because "
                                         "fewer than [web] fd_reserve file descriptors were free (since start)",
                                         registry=self.registry)
        self.stream_clients = Gauge("warnhub_stream_clients", "Open live streams (/api/v1/stream)",
                                    registry=self.registry)
        self.stream_hung_up = Gauge("warnhub_stream_hung_up", "Live-stream clients the hub hung up on since start, "
                                    "by reason (dropped: its queue overflowed; stalled: it stopped reading, evicted "
                                    "at a heartbeat)", ["reason"], registry=self.registry)
        self.failed = Gauge("warnhub_failed", "Items failed and still to be done, per stage (rules, publish; "
                            "delivery: deliveries that failed in the last 24 h)", ["stage"], registry=self.registry)
        self.canary_seconds = Histogram("warnhub_canary_delivery_seconds", "Canary delivery time per channel: from "
                                        "the intake's acceptance of the canary to the receiver's receipt "
                                        "(see [canary])", ["channel"],
                                        registry=self.registry,
                                        buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
