"""schemathesis hooks for sanhook (.ci/schemathesis.sh): NDJSON request bodies.

POST /api/v1/events also takes `application/x-ndjson` (one event per line); schemathesis has no
serializer for it, so generated values are written as one JSON document per line: an array as
its items, anything else as one line.
"""
import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    items = value if isinstance(value, list) else [value]
    return "\n".join(json.dumps(item) for item in items).encode()
