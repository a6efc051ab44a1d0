#!/usr/bin/env python3
"""A scriptable FTPS client for passerelle's end-to-end tests (Python's ssl).

It exists to do what ordinary clients never do on purpose: send raw command
lines, open a data connection from another address, without TLS, or without
resuming the control connection's TLS session, and cut an upload without a
TLS close_notify. Reads one JSON plan on standard input, prints one JSON
report on standard output; every operation is attempted and reported.

Plan:
    {"mode": "explicit" | "implicit", "port": 2121, "user": "alice", "password": "...",
     "login": true, "timeout": 10,
     "reuse": true (data connections resume the control TLS session),
     "data_tls": true, "data_source": "127.0.0.2" (bind data connections there),
     "thief_source": "127.0.0.2" (before each data connection, one from there reaches the port first),
     "ops": [...]}

Operations (paths are strings, or {"hex": "..."} for raw bytes, sent as is):
    {"op": "raw", "line": "NOOP"}                      -> the reply
    {"op": "get", "remote": P, "offset": N}             -> size, sha256, head (text)
    {"op": "put", "remote": P, "data": "text", "cut": false}
    {"op": "list", "cmd": "LIST" | "NLST" | "MLSD", "path": P} -> lines
    {"op": "cmd", "verb": "DELE", "path": P}             -> the reply
    {"op": "abort_get", "remote": P}                     -> the replies to ABOR sent mid-download
    {"op": "abort_put", "remote": P, "data": "text"}    -> the replies to ABOR sent mid-upload
    {"op": "foreign_session"}   logs in a second control connection; later data connections of
                                this one offer the second one's TLS session
    {"op": "hijack", "remote": P}  another TLS client from the same address races this one to its
                                data ports: first a full handshake on one (its session is kept), then
                                a resumption of that session on the next, during RETR P
                                -> value: {"codes": [first, second], "stolen": bytes it received}
    {"op": "wait_reply", "ready_file": F, "timeout": 10}  creates the local file F, then waits,
                                idle, for a reply the server sends unasked (421 when it ends the
                                session) -> value: {"closed_at": Unix time in seconds} or
                                {"silent": true} when nothing came within the timeout

Report:
    {"greeting": "...", "auth": "ok" | "failed" | "error", "error": "...",
     "results": [{"op": "...", "ok": bool, "code": N, "reply": "...", "value": ...}]}
"""

import hashlib
import json
import socket
import ssl
import struct
import sys
import time
import traceback


def as_bytes(value):
    if isinstance(value, dict):
        return bytes.fromhex(value["hex"])
    return value.encode("utf-8")


def context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Client:
    def __init__(self, plan, ctx=None):
        self.plan = plan
        self.timeout = plan.get("timeout", 10)
        self.ctx = ctx or context()
        # Data connections offer this connection's TLS session unless told otherwise.
        self.session_source = self
        raw = socket.create_connection(("127.0.0.1", plan["port"]), timeout=self.timeout)
        if plan.get("mode", "explicit") == "implicit":
            self.sock = self.ctx.wrap_socket(raw)
            self.greeting = self.reply()[1]
        else:
            self.sock = raw
            self.greeting = self.reply()[1]
            code, text = self.command(b"AUTH TLS")
            if code != 234:
                raise RuntimeError(f"AUTH TLS refused: {code} {text}")
            self.sock = self.ctx.wrap_socket(raw)
        self.buf = b""

    def reply(self):
        """Reads one (possibly multi-line) reply: (code, text)."""
        lines = []
        while True:
            line = self.readline()
            lines.append(line)
            if len(line) >= 4 and line[:3].isdigit() and line[3:4] == " ":
                if len(lines) == 1 or lines[0][:3] == line[:3]:
                    return int(line[:3]), "\n".join(lines)

    def readline(self):
        if not hasattr(self, "buf"):
            self.buf = b""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("control connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def command(self, line):
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def login(self):
        code, text = self.command(b"USER " + self.plan["user"].encode())
        if code == 331:
            code, text = self.command(b"PASS " + self.plan["password"].encode())
        if code != 230:
            return False
        for line in (b"PBSZ 0", b"PROT P", b"TYPE I"):
            self.command(line)
        return True

    def data(self, line):
        """EPSV, connect, send `line`; returns (conn, code, text): conn None on error."""
        code, text = self.command(b"EPSV")
        if code != 229:
            return None, code, text
        port = int(text.split("|||")[1].split("|")[0])
        thief = self.plan.get("thief_source")
        if thief:
            # Kept open until the client ends: the server must ignore it.
            self.thieves = getattr(self, "thieves", [])
            self.thieves.append(socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(thief, 0)))
        source = self.plan.get("data_source")
        raw = socket.create_connection(
            ("127.0.0.1", port), timeout=self.timeout, source_address=(source, 0) if source else None
        )
        code, text = self.command(line)
        if code != 150:
            raw.close()
            return None, code, text
        if not self.plan.get("data_tls", True):
            return raw, code, text
        session = self.session_source.sock.session if self.plan.get("reuse", True) else None
        try:
            conn = self.ctx.wrap_socket(raw, session=session)
        except (ssl.SSLError, OSError) as e:
            raw.close()
            code, final = self.reply()
            return None, code, f"{text}\ndata TLS handshake failed: {e}\n{final}"
        return conn, code, text


def cut(conn):
    """Ends a connection with a TCP reset: no close_notify, no FIN."""
    raw = conn
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()


def finish(conn, close_notify=True):
    try:
        if close_notify and isinstance(conn, ssl.SSLSocket):
            conn.unwrap()
    except (ssl.SSLError, OSError):
        pass
    conn.close()


def read_all(conn):
    """Everything until the end of the data connection: (bytes, error text)."""
    content, error = b"", ""
    try:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            content += chunk
    except (ssl.SSLError, OSError) as e:
        error = f"\nrecv: {e}"
    finish(conn)
    return content, error


def hijack(client, remote):
    """The attacker connects first to each data port of `client` (same address,
    its own TLS context); the victim's transfer commands make the server take it."""
    thief = context()
    codes, stolen, session = [], 0, None
    for attempt in range(2):
        code, text = client.command(b"EPSV")
        if code != 229:
            return {"ok": False, "code": code, "reply": text}
        port = int(text.split("|||")[1].split("|")[0])
        raw = socket.create_connection(("127.0.0.1", port), timeout=client.timeout)
        code, text = client.command(b"RETR " + remote)
        try:
            conn = thief.wrap_socket(raw, session=session)
            session = conn.session
            if attempt == 1:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    stolen += len(chunk)
            conn.close()
        except (ssl.SSLError, OSError):
            raw.close()
        if code == 150:
            code, text = client.reply()
        codes.append(code)
    return {"ok": stolen == 0, "code": codes[-1], "reply": text, "value": {"codes": codes, "stolen": stolen}}


def run_op(client, op):
    kind = op["op"]
    if kind == "raw":
        code, text = client.command(as_bytes(op["line"]))
        return {"ok": code < 400, "code": code, "reply": text}
    if kind == "cmd":
        line = op["verb"].encode() + (b" " + as_bytes(op["path"]) if "path" in op else b"")
        code, text = client.command(line)
        return {"ok": code < 400, "code": code, "reply": text}
    if kind == "get":
        if op.get("offset"):
            client.command(b"REST %d" % op["offset"])
        conn, code, text = client.data(b"RETR " + as_bytes(op["remote"]))
        if conn is None:
            return {"ok": False, "code": code, "reply": text}
        content, error = read_all(conn)
        text += error
        code, final = client.reply()
        return {
            "ok": code == 226,
            "code": code,
            "reply": text + "\n" + final,
            "value": {
                "size": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
                "head": content[:4096].decode("utf-8", "replace"),
            },
        }
    if kind == "put":
        conn, code, text = client.data(b"STOR " + as_bytes(op["remote"]))
        if conn is None:
            return {"ok": False, "code": code, "reply": text}
        try:
            conn.sendall(op.get("data", "").encode())
        except (ssl.SSLError, OSError) as e:
            text += f"\nsend: {e}"
        if op.get("cut"):
            cut(conn)
        else:
            finish(conn)
        code, final = client.reply()
        return {"ok": code == 226, "code": code, "reply": text + "\n" + final}
    if kind == "foreign_session":
        other = Client(client.plan, ctx=client.ctx)
        ok = other.login()
        client.session_source = other
        client.keep = other
        return {"ok": ok, "code": 230 if ok else 530, "reply": "second connection logged in"}
    if kind == "hijack":
        return hijack(client, as_bytes(op["remote"]))
    if kind in ("abort_put", "abort_get"):
        verb = b"STOR " if kind == "abort_put" else b"RETR "
        conn, code, text = client.data(verb + as_bytes(op["remote"]))
        if conn is None:
            return {"ok": False, "code": code, "reply": text}
        if kind == "abort_put":
            conn.sendall(op.get("data", "").encode())
            got = 0
        else:
            got = len(conn.recv(65536))
        code, reply = client.command(b"ABOR")
        codes = [code]
        if code == 426:
            code, more = client.reply()
            codes.append(code)
            reply += "\n" + more
        finish(conn, close_notify=kind == "abort_put")
        return {"ok": codes == [426, 226], "code": code, "reply": reply, "value": {"codes": codes, "got": got}}
    if kind == "list":
        line = op.get("cmd", "NLST").encode()
        if "path" in op:
            line += b" " + as_bytes(op["path"])
        conn, code, text = client.data(line)
        if conn is None:
            return {"ok": False, "code": code, "reply": text}
        content, error = read_all(conn)
        text += error
        code, final = client.reply()
        lines = [l for l in content.decode("utf-8", "replace").split("\r\n") if l]
        return {"ok": code == 226, "code": code, "reply": text + "\n" + final, "value": lines}
    if kind == "wait_reply":
        with open(op["ready_file"], "w") as ready:
            ready.write("connected\n")
        client.sock.settimeout(op.get("timeout", 10))
        try:
            code, text = client.reply()
        except (socket.timeout, TimeoutError):
            client.sock.settimeout(client.timeout)
            return {"ok": True, "code": 0, "reply": "", "value": {"silent": True}}
        return {"ok": code < 400, "code": code, "reply": text, "value": {"closed_at": time.time()}}
    raise ValueError(f"unknown op {kind}")


def main():
    plan = json.load(sys.stdin)
    report = {"results": []}
    try:
        client = Client(plan)
        report["greeting"] = client.greeting
        if plan.get("login", True):
            report["auth"] = "ok" if client.login() else "failed"
            if report["auth"] != "ok":
                print(json.dumps(report))
                return
        for op in plan.get("ops", []):
            try:
                result = run_op(client, op)
            except Exception as e:  # reported, and the plan goes on if it can
                result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            result["op"] = op["op"]
            report["results"].append(result)
            if "error" in result and "closed" in result["error"]:
                break
    except Exception as e:
        report.setdefault("auth", "error")
        report["error"] = f"{type(e).__name__}: {e}"
        report["trace"] = traceback.format_exc()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
