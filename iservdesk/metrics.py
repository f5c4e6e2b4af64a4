"""Counters, gauges and a histogram of the portal process, and their Prometheus text form.

Hand-written (the text format is small) so there is no dependency to package. Values
that live in the database (desktops by state, cleanup actions, done by another process)
are read at scrape time by web/metrics.py; what only this process sees is counted here.
Counting never blocks: plain Python numbers under gevent's single thread.
"""

import collections


def _labels(names, values):
    if not names:
        return ""
    pairs = ('%s="%s"' % (name, str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " "))
             for name, value in zip(names, values))
    return "{%s}" % ",".join(pairs)


class Counter:
    kind = "counter"

    def __init__(self, name, help, labels=()):
        self.name, self.help, self.label_names = name, help, tuple(labels)
        self.values = collections.defaultdict(float)

    def inc(self, *labels, amount=1):
        self.values[tuple(labels)] += amount

    def samples(self):
        for labels, value in sorted(self.values.items()):
            yield self.name, _labels(self.label_names, labels), value


class Gauge(Counter):
    kind = "gauge"

    def dec(self, *labels, amount=1):
        self.values[tuple(labels)] -= amount


class Histogram:
    kind = "histogram"

    def __init__(self, name, help, buckets):
        self.name, self.help, self.buckets = name, help, tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value):
        self.sum += value
        self.count += 1
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1

    def samples(self):
        for bound, count in zip(self.buckets, self.counts):
            yield self.name + "_bucket", '{le="%g"}' % bound, count
        yield self.name + "_bucket", '{le="+Inf"}', self.count
        yield self.name + "_sum", "", self.sum
        yield self.name + "_count", "", self.count


DESKTOP_STARTS = Counter("iservdesk_desktop_starts_total", "Desktop starts begun (create or resume).",
                         ["type"])
DESKTOP_START_FAILURES = Counter("iservdesk_desktop_start_failures_total",
                                 "Desktop starts that ended in status error.", ["type", "reason"])
DESKTOP_START_SECONDS = Histogram("iservdesk_desktop_start_seconds",
                                  "Seconds from a start to the desktop answering (pulls included).",
                                  [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300])
WEBSOCKETS_OPEN = Gauge("iservdesk_websockets_open", "WebSockets relayed to desktops right now.")
PROXY_BYTES = Counter("iservdesk_proxy_bytes_total", "Bytes relayed between browsers and desktops.",
                      ["direction"])
SIGNINS = Counter("iservdesk_signins_total", "Successful sign-ins.")
SIGNIN_FAILURES = Counter("iservdesk_signin_failures_total", "Sign-ins refused, by reason.", ["reason"])

PROCESS_METRICS = (DESKTOP_STARTS, DESKTOP_START_FAILURES, DESKTOP_START_SECONDS, WEBSOCKETS_OPEN,
                   PROXY_BYTES, SIGNINS, SIGNIN_FAILURES)


def render(metrics):
    """The Prometheus text exposition (version 0.0.4) of `metrics`."""
    lines = []
    for metric in metrics:
        lines.append("# HELP %s %s" % (metric.name, metric.help))
        lines.append("# TYPE %s %s" % (metric.name, metric.kind))
        for name, labels, value in metric.samples():
            lines.append("%s%s %s" % (name, labels, repr(float(value)) if value % 1 else int(value)))
    return "\n".join(lines) + "\n"
