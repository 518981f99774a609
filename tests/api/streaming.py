"""InvokeWithResponseStream with boto3: `streaming.py FUNCTION PAYLOAD`
prints one JSON line: the chunks as they came (text, and seconds since the
call), and the InvokeComplete event."""

import json
import sys
import time

from mayfly_test import client

lam = client()
started = time.monotonic()
response = lam.invoke_with_response_stream(FunctionName=sys.argv[1], Payload=sys.argv[2].encode())
chunks, complete = [], None
for event in response["EventStream"]:
    if "PayloadChunk" in event:
        chunks.append(
            {"text": event["PayloadChunk"]["Payload"].decode(), "at": time.monotonic() - started}
        )
    if "InvokeComplete" in event:
        complete = event["InvokeComplete"]
print(json.dumps({"status": response["StatusCode"], "chunks": chunks, "complete": complete}))
