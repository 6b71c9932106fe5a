"""Load client for bench/stalls.sh (not a test fixture): sends N streaming chat requests for MODEL,
C at a time, over plain asyncio sockets, and prints as JSON how many completed and, for each
stream, the longest silence between two reads (for a stream that stalled and was rescued: the time
from its last chunk to the continuation's first)."""

import asyncio
import json
import sys
import time

REQUEST = (
    "POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
    "content-length: {length}\r\nconnection: close\r\n\r\n{body}"
)


async def one(host, port, request):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    seen, last, longest = b"", None, 0.0
    while chunk := await reader.read(65536):
        now = time.monotonic()
        if last is not None:
            longest = max(longest, now - last)
        last = now
        seen += chunk
    writer.close()
    return b"data: [DONE]" in seen, longest


async def main(url, model, total, concurrency):
    host, _, port = url.removeprefix("http://").partition(":")
    body = f'{{"model":"{model}","stream":true,"messages":[{{"role":"user","content":"Say hello"}}]}}'
    request = REQUEST.format(host=url, length=len(body), body=body).encode()
    gate = asyncio.Semaphore(concurrency)

    async def guarded():
        async with gate:
            return await one(host, int(port), request)

    results = await asyncio.gather(*(guarded() for _ in range(total)))
    print(json.dumps({"complete": sum(d for d, _ in results), "gaps": [g for _, g in results]}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
