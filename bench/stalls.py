"""Load client for bench/stalls.sh: sends N streaming chat requests for MODEL with C at a time
and prints, as JSON, how many completed and the longest silence between two chunks of each
stream (for a stream that stalled and was rescued: the time from its last chunk to the
continuation's first)."""

import asyncio
import json
import sys
import time

import httpx


async def one(client, url, model):
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "Say hello"}]}
    last, longest, done = None, 0.0, False
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        async for chunk in response.aiter_bytes():
            now = time.monotonic()
            if last is not None:
                longest = max(longest, now - last)
            last = now
            done = done or b"[DONE]" in chunk
    return done, longest


async def main(url, model, total, concurrency):
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=None, limits=limits) as client:

        async def guarded():
            async with gate:
                return await one(client, url, model)

        results = await asyncio.gather(*(guarded() for _ in range(total)))
    print(json.dumps({"complete": sum(d for d, _ in results), "gaps": [g for _, g in results]}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
