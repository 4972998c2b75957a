"""Parses syslog messages with the strict RFC 5424 parser (PyPI
syslog-rfc5424-parser): reads a JSON array of messages (frames without their
octet count) on stdin, prints a JSON array with, for each, the parsed fields
or {"error": ...}."""

import json
import sys

from syslog_rfc5424_parser import SyslogMessage

out = []
for frame in json.load(sys.stdin):
    try:
        message = SyslogMessage.parse(frame)
    except Exception as error:  # noqa: BLE001 - reported to the test
        out.append({"error": repr(error)})
        continue
    fields = message.as_dict()
    fields["procid"] = None if fields["procid"] is None else str(fields["procid"])
    fields["sd"] = fields["sd"] or None
    out.append(fields)
json.dump(out, sys.stdout)
