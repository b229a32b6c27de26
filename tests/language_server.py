"""A small client of a language server over stdio, for tests/test_language_server.py.

It speaks JSON-RPC 2.0 with the Language Server Protocol's framing (a `Content-Length` header,
a blank line, then the JSON body). A thread reads what the server writes: responses go to the
request that waits for them, diagnostics are kept per document, and the server's own requests
get their answers (the settings for `workspace/configuration`, null for the rest, which only
register capabilities or progress tokens).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
from pathlib import Path

# Long enough for a loaded machine: the waits only keep a broken server from hanging the run.
WAIT_S = 60


class LanguageServerError(RuntimeError):
    """The server answered a request with an error, or went away."""


class LanguageServer:
    def __init__(self, command: list[str], settings: dict):
        self.settings = settings
        # a file, not a pipe: it never fills and blocks the server (close() closes it)
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.stderr)
        self.next_id = 0
        self.responses: dict[int, dict] = {}
        self.diagnostics: dict[str, list[list[dict]]] = {}  # each publication, per document
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self.read_messages, daemon=True)
        self.reader.start()

    # -- the conversation ------------------------------------------------------------------

    def initialize(self, root: Path) -> dict:
        capabilities = {
            "textDocument": {
                "completion": {"completionItem": {
                    "documentationFormat": ["markdown", "plaintext"], "snippetSupport": True}},
                "hover": {"contentFormat": ["markdown", "plaintext"]},
                "publishDiagnostics": {"relatedInformation": True},
            },
            "workspace": {"configuration": True, "didChangeConfiguration": {
                "dynamicRegistration": True}},
        }
        result = self.request("initialize", {"processId": None, "rootUri": root.as_uri(),
                                             "capabilities": capabilities})
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": self.settings})
        return result

    def open(self, path: Path, text: str) -> str:
        """Open a document; its URI."""
        uri = path.as_uri()
        self.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "yaml", "version": 1, "text": text}})
        return uri

    def diagnostics_of(self, uri: str) -> list[dict]:
        """The first diagnostics the server publishes for an open document."""
        with self.changed:
            if not self.changed.wait_for(lambda: self.diagnostics.get(uri), WAIT_S):
                raise LanguageServerError(f"no diagnostics for {uri} in {WAIT_S} s"
                                          f"{self.exit_status()}")
            return self.diagnostics[uri][0]

    def completion(self, uri: str, line: int, character: int) -> list[dict]:
        """The completion items at a position (0-based, as the protocol counts)."""
        result = self.request("textDocument/completion", {
            "textDocument": {"uri": uri}, "position": {"line": line, "character": character}})
        return result["items"] if isinstance(result, dict) else (result or [])

    def close(self) -> None:
        try:
            self.request("shutdown", None)
            self.notify("exit", None)
            self.process.wait(WAIT_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.stderr.close()

    # -- JSON-RPC --------------------------------------------------------------------------

    def request(self, method: str, params: object) -> object:
        with self.changed:
            self.next_id += 1
            request_id = self.next_id
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        with self.changed:
            if not self.changed.wait_for(lambda: request_id in self.responses, WAIT_S):
                raise LanguageServerError(f"no answer to {method} in {WAIT_S} s"
                                          f"{self.exit_status()}")
            response = self.responses.pop(request_id)
        if "error" in response:
            raise LanguageServerError(f"{method}: {response['error']}")
        return response.get("result")

    def notify(self, method: str, params: object) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def read_messages(self) -> None:
        while (message := self.read_message()) is not None:
            if "id" in message and "method" in message:
                self.answer(message)
            elif "id" in message:
                with self.changed:
                    self.responses[message["id"]] = message
                    self.changed.notify_all()
            elif message.get("method") == "textDocument/publishDiagnostics":
                params = message["params"]
                with self.changed:
                    self.diagnostics.setdefault(params["uri"], []).append(params["diagnostics"])
                    self.changed.notify_all()
        with self.changed:  # the server is gone: wake whoever waits, to report it
            self.changed.notify_all()

    def read_message(self) -> dict | None:
        """One framed message, or None at the end of the stream."""
        length = None
        while (line := self.process.stdout.readline()) not in (b"\r\n", b"\n"):
            if not line:
                return None
            name, _, value = line.decode("ascii").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return json.loads(self.process.stdout.read(length))

    def answer(self, request: dict) -> None:
        """The server's requests: the settings it asks for, null for registrations."""
        result = None
        if request["method"] == "workspace/configuration":
            result = [self.setting(item.get("section")) for item in request["params"]["items"]]
        self.send({"jsonrpc": "2.0", "id": request["id"], "result": result})

    def setting(self, section: str | None) -> object:
        """A dotted section of the settings ("yaml.validate"), or all of them."""
        value: object = self.settings
        for part in section.split(".") if section else ():
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def exit_status(self) -> str:
        if self.process.poll() is None:
            return ""
        self.stderr.seek(0)
        return f" (the server exited with {self.process.returncode}: " \
               f"{self.stderr.read().decode(errors='replace')[-2000:]})"
