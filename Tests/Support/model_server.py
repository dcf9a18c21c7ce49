#!/usr/bin/env python3
"""A scripted model API on loopback for driving real agents in tests (no model API is
reachable here). It speaks the Anthropic Messages API (Claude Code), the OpenAI Responses API
(Codex) and OpenAI Chat Completions (aider), streaming or not, and plays a script: each turn of
the agent's main conversation gets the next shell command as a tool call (aider: a ```bash
block), and once they are used up, a final text. Side requests (titles, summaries) get a
short text and do not use up a command. Every request is logged, headers included, so a test
can assert what reached "the model" (never a credential).

  model_server.py SCRIPT.json LOG.jsonl [--bind ADDR]

SCRIPT.json: {"commands": ["cmd", ...], "final": "text"}. Prints {"port": N} once listening.
Each log line: {"path", "headers", "body"} (body as JSON when it is JSON).
"""
import http.server
import json
import sys
import threading
import uuid

LOCK = threading.Lock()


def load(path):
    with open(path) as f:
        return json.load(f)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script = {}
    log_path = ""

    def log_message(self, *args):
        pass

    def record(self, body):
        entry = {"path": self.path, "method": self.command, "headers": {k: v for k, v in self.headers.items()}}
        try:
            entry["body"] = json.loads(body) if body else None
        except ValueError:
            entry["body"] = body.decode(errors="replace")
        with LOCK, open(self.log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        return entry.get("body") if isinstance(entry.get("body"), dict) else {}

    def do_GET(self):
        self.record(b"")
        if self.path.rstrip("/").endswith("/models"):
            return self.send_json({"object": "list", "data": [{"id": "scripted", "object": "model", "owned_by": "airlock-tests"}]})
        self.send_json({"ok": True})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = self.record(body)
        path = self.path.split("?")[0]
        if path.endswith("/messages/count_tokens"):
            return self.send_json({"input_tokens": 100})
        if path.endswith("/messages"):
            return self.serve_messages(request)
        if path.endswith("/responses"):
            return self.serve_responses(request)
        if path.endswith("/chat/completions"):
            return self.serve_chat(request)
        self.send_json({"error": {"message": "unknown path " + path}}, status=404)

    # MARK: helpers

    def send_json(self, value, status=200):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_sse(self, events):
        """`events`: (event name or None, data dict) pairs, sent as one SSE stream."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for name, data in events:
            chunk = ("event: %s\n" % name if name else "") + "data: %s\n\n" % (data if isinstance(data, str) else json.dumps(data))
            self.wfile.write(chunk.encode())
            self.wfile.flush()
        self.close_connection = True

    def next_command(self, index):
        commands = self.script.get("commands", [])
        return commands[index] if index < len(commands) else None

    # MARK: Anthropic Messages (Claude Code)

    def serve_messages(self, request):
        tools = [t.get("name") for t in request.get("tools") or []]
        used = sum(1 for m in request.get("messages", []) if m.get("role") == "assistant"
                   for c in (m.get("content") if isinstance(m.get("content"), list) else []) if c.get("type") == "tool_use")
        command = self.next_command(used) if "Bash" in tools else None
        message_id = "msg_" + uuid.uuid4().hex[:20]
        if command is not None:
            block = {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": "Bash",
                     "input": {"command": command, "description": "scripted step %d" % (used + 1)}}
            stop = "tool_use"
        else:
            text = self.script.get("final", "done") if "Bash" in tools else "Scripted title"
            block = {"type": "text", "text": text}
            stop = "end_turn"
        usage = {"input_tokens": 100, "output_tokens": 20}
        model = request.get("model", "scripted")
        if not request.get("stream"):
            return self.send_json({"id": message_id, "type": "message", "role": "assistant", "model": model, "content": [block],
                              "stop_reason": stop, "stop_sequence": None, "usage": usage})
        start = dict(block, input={}) if block["type"] == "tool_use" else {"type": "text", "text": ""}
        delta = ({"type": "input_json_delta", "partial_json": json.dumps(block["input"])} if block["type"] == "tool_use"
                 else {"type": "text_delta", "text": block["text"]})
        self.send_sse([
            ("message_start", {"type": "message_start", "message": {"id": message_id, "type": "message", "role": "assistant",
                                                                    "model": model, "content": [], "stop_reason": None,
                                                                    "stop_sequence": None, "usage": usage}}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                               "usage": {"output_tokens": 20}}),
            ("message_stop", {"type": "message_stop"}),
        ])

    # MARK: OpenAI Responses (Codex)

    def serve_responses(self, request):
        tools = request.get("tools") or []
        names = {t.get("name") or t.get("type") for t in tools}
        shell = next((n for n in ("exec_command", "shell", "shell_command", "local_shell") if n in names), None)
        items = request.get("input") or []
        used = sum(1 for i in items if isinstance(i, dict) and i.get("type") in ("function_call", "local_shell_call", "custom_tool_call"))
        command = self.next_command(used) if shell else None
        response_id = "resp_" + uuid.uuid4().hex[:20]
        if command is not None:
            call_id = "call_" + uuid.uuid4().hex[:20]
            if shell == "exec_command":
                arguments = {"cmd": command}
            elif shell == "shell_command":
                arguments = {"command": command}
            else:
                arguments = {"command": ["bash", "-lc", command]}
            item = {"type": "function_call", "id": "fc_" + uuid.uuid4().hex[:20], "call_id": call_id, "name": shell,
                    "arguments": json.dumps(arguments), "status": "completed"}
        else:
            text = self.script.get("final", "done") if shell else "Scripted title"
            item = {"type": "message", "id": "msg_" + uuid.uuid4().hex[:20], "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}
        response = {"id": response_id, "object": "response", "created_at": 0, "status": "completed", "model": request.get("model", "scripted"),
                    "output": [item], "usage": {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120,
                                                "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}}
        if not request.get("stream"):
            return self.send_json(response)
        created = dict(response, status="in_progress", output=[])
        self.send_sse([
            ("response.created", {"type": "response.created", "sequence_number": 0, "response": created}),
            ("response.output_item.added", {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": item}),
            ("response.output_item.done", {"type": "response.output_item.done", "sequence_number": 2, "output_index": 0, "item": item}),
            ("response.completed", {"type": "response.completed", "sequence_number": 3, "response": response}),
        ])

    # MARK: OpenAI Chat Completions (aider)

    def serve_chat(self, request):
        messages = request.get("messages") or []
        used = sum(1 for m in messages if m.get("role") == "assistant" and "```bash" in (m.get("content") or ""))
        command = self.next_command(used)
        if command is not None:
            text = "I will run this command:\n\n```bash\n%s\n```\n" % command
        else:
            text = self.script.get("final", "done")
        completion_id = "chatcmpl-" + uuid.uuid4().hex[:20]
        model = request.get("model", "scripted")
        if not request.get("stream"):
            return self.send_json({"id": completion_id, "object": "chat.completion", "created": 0, "model": model,
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}})
        chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": 0, "model": model}
        self.send_sse([
            (None, dict(chunk, choices=[{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}])),
            (None, dict(chunk, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}],
                        usage={"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120})),
            (None, "[DONE]"),
        ])


def main(argv):
    script, log = argv[1], argv[2]
    bind = argv[argv.index("--bind") + 1] if "--bind" in argv else "127.0.0.1"
    Handler.script = load(script)
    Handler.log_path = log
    open(log, "a").close()
    server = http.server.ThreadingHTTPServer((bind, 0), Handler)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
