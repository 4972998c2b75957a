"""Sends records to a Forward listener with Fluentd's Python client
(PyPI fluent-logger 0.11.1, Message mode, no acks).

Usage: python_sender.py HOST PORT
"""

import sys

from fluent import sender


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    logger = sender.FluentSender("deis", host=host, port=port, nanosecond_precision=True)
    emits = [
        # The current time, as an EventTime.
        lambda: logger.emit("app", {"app": "pyapp", "process": "web.1", "log": "hello from python\n"}),
        # An exact EventTime.
        lambda: logger.emit_with_time(
            "app",
            sender.EventTime(1700000000, 123456789),
            {"app": "pyapp", "process": "worker.2", "message": "exact time", "release": "v7"},
        ),
        # Integer seconds, a bin value, Kubernetes metadata and no app field.
        lambda: logger.emit_with_time(
            "app",
            1700000001,
            {
                "log": b"bytes from kubernetes\n",
                "stream": "stdout",
                "kubernetes": {
                    "namespace_name": "pyapp",
                    "pod_name": "pyapp-cmd-5d9f8c7b6-ab1cd",
                    "container_name": "pyapp-cmd",
                    "labels": {"app": "pyapp", "type": "cmd", "heritage": "deis"},
                    "annotations": {"a": [1, 2, {"b": None}]},
                },
            },
        ),
    ]
    for emit in emits:
        if not emit():
            print(f"emit failed: {logger.last_error!r}", file=sys.stderr)
            sys.exit(1)
    logger.close()


if __name__ == "__main__":
    main()
