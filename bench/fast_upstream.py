#!/usr/bin/env python3
"""A hostile OpenAI-compatible upstream for bench/fast_upstream.sh (not a test fixture).

A streaming request gets valid text deltas, written as fast as the socket takes them, forever.
A non-streaming request gets a valid chat completion of a random size between --min-mb and
--max-mb megabytes. One answer per connection (`connection: close`).
Prints "listening on http://127.0.0.1:PORT" once it accepts connections.
"""
import argparse
import asyncio
import json
import random

DELTA = (
    'data: {"id":"fast","object":"chat.completion.chunk","created":0,"model":"fast",'
    '"choices":[{"index":0,"delta":{"content":"0123456789abcdef"},"finish_reason":null}]}\n\n'
)
BLOCK = (DELTA * 4096).encode()
HEAD = 'HTTP/1.1 200 OK\r\ncontent-type: {}\r\n{}connection: close\r\n\r\n'
ANSWER_HEAD = (
    b'{"id":"fast","object":"chat.completion","created":0,"model":"fast","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"'
)
ANSWER_TAIL = (
    b'"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
)


async def read_request(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return json.loads(await reader.readexactly(length)) if length else {}


def handler(args, padding):
    async def answer(reader, writer):
        try:
            request = await read_request(reader)
            if request.get("stream"):
                writer.write(HEAD.format("text/event-stream", "").encode())
                while True:
                    writer.write(BLOCK)
                    await writer.drain()
            size = random.randint(args.min_mb << 20, args.max_mb << 20)
            text = size - len(ANSWER_HEAD) - len(ANSWER_TAIL)
            length = f"content-length: {size}\r\n"
            writer.write(HEAD.format("application/json", length).encode())
            writer.write(ANSWER_HEAD)
            writer.write(padding[:text])
            writer.write(ANSWER_TAIL)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return answer


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--min-mb", type=int, default=60)
    parser.add_argument("--max-mb", type=int, default=100)
    args = parser.parse_args()
    padding = memoryview(b"a" * (args.max_mb << 20))
    server = await asyncio.start_server(handler(args, padding), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
