#!/usr/bin/env python3
"""Hostile load on a team gate, for GateLoadTests: bounded in count and time, stopping by
itself, printing one JSON summary. Each mode comes from its own loopback address (--source),
as a compromised agent host would, so the test's approver (127.0.0.1) is another peer.

  slow      COUNT connections each sending one byte of a request head per second
  waits     COUNT connections each holding GET /v1/proposals/ID/wait with a host's token
  proposals SESSIONS sessions of one host, PER proposals each, over one kept-alive connection
"""
import argparse
import asyncio
import base64
import http.client
import json
import resource
import socket
import sys
import time


def raise_descriptor_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, needed), hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        sys.exit(f"gate_load: needs {needed} descriptors, the hard limit is {hard} (raise it: ulimit -Hn)")


async def connect(args):
    return await asyncio.open_connection(args.host, args.port, local_addr=(args.source, 0))


def classify(data):
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    return parts[1] if len(parts) > 1 and line.startswith("HTTP/1.") else "garbage"


async def slow(args):
    counts = {}
    closed_after = []
    deadline = time.monotonic() + args.seconds
    head = b"GET /v1/controls HTTP/1.1\r\nHost: gate\r\nX-Slow: " + b"a" * 4096

    async def one(_):
        try:
            reader, writer = await connect(args)
        except OSError as error:
            counts["connect_error"] = counts.get("connect_error", 0) + 1
            return
        started = time.monotonic()
        sent = 0
        try:
            while time.monotonic() < deadline:
                try:
                    data = await asyncio.wait_for(reader.read(4096), 1.0)
                except asyncio.TimeoutError:
                    writer.write(head[sent:sent + 1])
                    sent += 1
                    await writer.drain()
                    continue
                if data:
                    code = classify(data)
                    counts[code] = counts.get(code, 0) + 1
                else:
                    counts["closed"] = counts.get("closed", 0) + 1
                    closed_after.append(time.monotonic() - started)
                return
            counts["open_at_end"] = counts.get("open_at_end", 0) + 1
        except (ConnectionError, OSError):
            counts["closed"] = counts.get("closed", 0) + 1
            closed_after.append(time.monotonic() - started)
        finally:
            writer.close()

    await asyncio.gather(*(one(i) for i in range(args.count)))
    return {"counts": counts, "longest_held_seconds": round(max(closed_after, default=0), 1)}


async def rest_of_response(reader, data):
    """What is missing of a response whose start is `data` (its head, then Content-Length)."""
    more = b""
    try:
        while data:
            whole = data + more
            head, separator, body = whole.partition(b"\r\n\r\n")
            if separator:
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                if len(body) >= length:
                    break
            piece = await asyncio.wait_for(reader.read(65536), 2.0)
            if not piece:
                break
            more += piece
    except (asyncio.TimeoutError, ConnectionError, OSError):
        pass
    return more


async def waits(args):
    counts = {}
    samples = {}
    deadline = time.monotonic() + args.seconds
    request = (f"GET /v1/proposals/{args.proposal}/wait?timeout={int(args.seconds) + 30} HTTP/1.1\r\nHost: gate\r\n"
               f"Authorization: Bearer {args.token}\r\n\r\n").encode()

    async def one(_):
        try:
            reader, writer = await asyncio.wait_for(connect(args), max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            counts["not_connected"] = counts.get("not_connected", 0) + 1
            return
        except OSError:
            counts["connect_error"] = counts.get("connect_error", 0) + 1
            return
        if deadline - time.monotonic() < 2:
            # Connected too late to tell a held wait from one not read yet.
            counts["late"] = counts.get("late", 0) + 1
            writer.close()
            return
        try:
            writer.write(request)
            await writer.drain()
            left = deadline - time.monotonic()
            data = await asyncio.wait_for(reader.read(65536), max(0.1, left))
            data += await rest_of_response(reader, data)
            code = classify(data) if data else "closed"
            counts[code] = counts.get(code, 0) + 1
            if code not in samples and data:
                samples[code] = data.split(b"\r\n\r\n", 1)[-1].decode("utf-8", "replace")[:400]
        except asyncio.TimeoutError:
            counts["held"] = counts.get("held", 0) + 1
        except (ConnectionError, OSError):
            counts["closed"] = counts.get("closed", 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(one(i) for i in range(args.count)))
    return {"counts": counts, "samples": samples}


class SourceConnection(http.client.HTTPConnection):
    def __init__(self, host, port, source):
        super().__init__(host, port, timeout=30, source_address=(source, 0))


def proposals(args):
    connection = SourceConnection(args.host, args.port, args.source)
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}
    counts = {}
    samples = {}

    def call(path, body):
        connection.request("POST", path, body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        return response.status, text

    payload = base64.b64encode(json.dumps({
        "type": "aws-request", "service": "sqs", "signing_name": "sqs", "region": "us-east-1", "operation": "CreateQueue",
        "method": "POST", "path": "/", "query": "",
        "headers": [["Content-Type", "application/x-amz-json-1.0"], ["X-Amz-Target", "AmazonSQS.CreateQueue"]],
        "body_base64": base64.b64encode(b'{"QueueName":"flood"}').decode(),
    }).encode()).decode()
    started = time.monotonic()
    for s in range(args.sessions):
        session = f"{args.prefix}-{s}"
        status, text = call("/v1/sessions", {"id": session})
        if status != 201:
            sys.exit(f"gate_load: session {session}: {status} {text}")
        for _ in range(args.per):
            if time.monotonic() - started > args.seconds:
                break
            status, text = call("/v1/proposals", {"session_id": session, "payload_base64": payload})
            counts[str(status)] = counts.get(str(status), 0) + 1
            if str(status) not in samples:
                samples[str(status)] = text[:400]
    return {"counts": counts, "samples": samples, "seconds": round(time.monotonic() - started, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["slow", "waits", "proposals"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--source", default="127.0.0.2")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--token", default="")
    parser.add_argument("--proposal", default="")
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--per", type=int, default=200)
    parser.add_argument("--prefix", default="flood")
    args = parser.parse_args()
    if args.mode == "proposals":
        summary = proposals(args)
    else:
        raise_descriptor_limit(args.count + 64)
        summary = asyncio.run(slow(args) if args.mode == "slow" else waits(args))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
