#!/usr/bin/env python3
"""Holds N streaming chat requests open at once, for bench/streams.sh (not a test fixture).

Opens N connections to the gateway (at most --connecting of them connecting at a time), sends one
streaming OpenAI chat request on each with `connection: close` (with --keep-alive, without it, as
the SDKs send it: the connection stays open after its stream), and waits until every stream has
its headers and first event. Then it prints

    open OPENED FAILED SECONDS

and keeps reading every stream to its end. A stream is complete when its status is 200 and its
body holds `data: [DONE]` and the chunked terminator; at the end it prints

    done COMPLETE ERRORS SHORT

ERRORS counts streams that failed to connect, got a status other than 200 or were reset; SHORT
those that ended without their terminator.
"""
import argparse
import asyncio
import sys
import time

REQUEST = (
    "POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
    "content-length: {length}\r\n{close}\r\n{body}"
)
TERMINATOR = b"0\r\n\r\n"


class Stream:
    """One request: `opened` is set once its first event arrived (then `first` is true) or it
    failed."""

    def __init__(self):
        self.opened = asyncio.Event()
        self.first = False
        self.outcome = "error"


async def run_one(args, request, stream, gate):
    try:
        async with gate:
            reader, writer = await asyncio.open_connection(args.host, args.port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            return
        seen = await reader.readuntil(b"\n\n")
        stream.first = True
        stream.opened.set()
        while not seen.endswith(TERMINATOR):
            more = await reader.read(65536)
            if not more:
                break
            seen += more
        writer.close()
        complete = b"data: [DONE]" in seen and seen.endswith(TERMINATOR)
        stream.outcome = "complete" if complete else "short"
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        stream.outcome = "error"
    finally:
        stream.opened.set()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url", help="the gateway, http://HOST:PORT")
    parser.add_argument("n", type=int, help="streams to hold open at once")
    parser.add_argument("--model", default="gpt")
    parser.add_argument("--connecting", type=int, default=32)
    parser.add_argument("--keep-alive", action="store_true", help="no `connection: close`")
    args = parser.parse_args()
    args.host, _, port = args.url.removeprefix("http://").partition(":")
    args.port = int(port)
    body = (
        f'{{"model":"{args.model}","stream":true,'
        '"messages":[{"role":"user","content":"Say hello"}]}'
    )
    request = REQUEST.format(
        host=args.url,
        length=len(body),
        close="" if args.keep_alive else "connection: close\r\n",
        body=body,
    ).encode()
    gate = asyncio.Semaphore(args.connecting)
    streams = [Stream() for _ in range(args.n)]
    started = time.monotonic()
    tasks = [asyncio.create_task(run_one(args, request, s, gate)) for s in streams]
    for stream in streams:
        await stream.opened.wait()
    failed = sum(1 for s in streams if not s.first)
    print(f"open {args.n - failed} {failed} {time.monotonic() - started:.1f}", flush=True)
    await asyncio.gather(*tasks)
    count = {"complete": 0, "error": 0, "short": 0}
    for stream in streams:
        count[stream.outcome] += 1
    print(f"done {count['complete']} {count['error']} {count['short']}", flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
