#!/usr/bin/env python3
"""A scriptable paramiko SFTP client for passerelle's end-to-end tests.

Reads one JSON plan on standard input and prints one JSON report on standard
output. Every operation is attempted and reported; a failed operation does not
stop the plan. Paths are strings, or {"hex": "..."} for raw bytes (NUL, bad
UTF-8), sent to the server exactly as given.

Plan:
    {"port": 2222, "user": "alice", "password": "..." | "key": "/path/to/key",
     "timeout": 10, "op_timeout": 20, "mode": "sftp" | "auth_tries", "attempts": 8,
     "client": "transport" | "sshclient", "key_files": ["..."],
     "allow_agent": false, "agent_socket": "/path" (sshclient: the agent's keys first),
     "auth_steps": [{"method": "password", "password": "..."} |
                    {"method": "publickey", "key": "..."} |
                    {"method": "interactive"}, ...]
         (transport: these methods in turn on one connection, until one logs in),
     "source": "127.0.0.2" (connect from this address),
     "proxy_header": "<hex>" (bytes sent before SSH, e.g. a PROXY protocol header),
     "ops": [{"op": "put", "local": "...", "remote": "..."}, ...]}

Report:
    {"auth": "ok" | "failed" | "error", "error": "...", "error_type": "...",
     "auth_seconds": 0.4 (from connecting until logged in or refused),
     "auth_steps": ["rejected" | "bad_type:publickey,password" | "ok", ...],
     "auth_log": ["Trying SSH agent key ...", "Authentication (publickey) failed.", ...]
         (paramiko's own log lines about authentication, in order),
     "results": [{"op": "...", "ok": true, "value": ...} |
                 {"op": "...", "ok": false, "error": "...", "errno": N}]}

Operations: put ("pipelined": false acknowledges each write before the
next), get, read, wait_read (read once `remote` exists, looking for it up
to `polls` times, `poll_millis` apart), write, listdir, stat, lstat, rename,
posix_rename, remove, mkdir, rmdir, symlink, hardlink, readlink, realpath,
chmod, utime (`path`, `atime`, `mtime`: Unix seconds), statvfs, write_then_cut (writes `bytes` bytes to `remote` and then
resets the TCP connection without closing the file; the script ends there),
read_then_cut (the same after reading `bytes` bytes of `remote`),
wait_closed (creates the local file `ready_file` once the SFTP session is up,
then stays connected and idle until the server ends the connection or
`timeout` seconds pass; value: {"closed": bool, "closed_at": Unix time in
seconds, when closed}), sparse_write (opens `remote` for writing, writes `size` bytes (default 1)
from `offset` in 32 KiB pieces, each acknowledged, then closes; reports the
first write error, the close's and the seconds taken), open_many (opens `remote`
for reading `count` times, keeping every handle, until the server refuses;
reports how many opened and the refusal, then, if `ready_file` is given,
creates it and waits up to 60 s for `release_file`, then closes `close` of
the handles and opens one more).
"""

import hashlib
import json
import logging
import os
import socket
import struct
import sys
import time
import traceback

import paramiko
from paramiko.sftp import CMD_CLOSE, CMD_EXTENDED, CMD_EXTENDED_REPLY


class AuthLog(logging.Handler):
    """Keeps paramiko's log lines about authentication: the keys it tries
    and each method's outcome."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith(("Trying ", "Authentication (")):
            self.lines.append(message)


def path_arg(value):
    """A plan path: str stays str (paramiko encodes UTF-8), {"hex"} becomes bytes."""
    if isinstance(value, dict):
        return bytes.fromhex(value["hex"])
    return value


def stat_value(attrs):
    return {
        "size": attrs.st_size,
        "mode": attrs.st_mode,
        "mtime": attrs.st_mtime,
        "is_dir": bool(attrs.st_mode is not None and (attrs.st_mode & 0o170000) == 0o040000),
        "is_link": bool(attrs.st_mode is not None and (attrs.st_mode & 0o170000) == 0o120000),
    }


def extended(sftp, name, *args):
    """Sends an SSH_FXP_EXTENDED request; returns the reply type."""
    t, msg = sftp._request(CMD_EXTENDED, name, *args)
    return "extended_reply" if t == CMD_EXTENDED_REPLY else "status_ok"


def cut_connection(transport):
    """Resets the TCP connection (RST): no channel close, no SSH disconnect."""
    sock = transport.sock
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def sparse_write(sftp, op):
    """`size` bytes from `offset` (one far beyond the start makes a sparse file), then CLOSE."""
    started = time.monotonic()
    report = {}
    f = sftp.open(path_arg(op["remote"]), "wb")
    f.set_pipelined(False)
    try:
        f.seek(op["offset"])
        left = op.get("size", 1)
        while left > 0:
            n = min(left, 32768)
            f.write(b"x" * n)
            f.flush()
            left -= n
        report["write"] = "ok"
    except IOError as e:
        report["write"] = str(e)
    try:
        # paramiko's close() swallows the server's answer: CLOSE sent here.
        f._closed = True
        sftp._request(CMD_CLOSE, f.handle)
        report["close"] = "ok"
    except IOError as e:
        report["close"] = str(e)
    report["seconds"] = time.monotonic() - started
    return report


def open_many(sftp, op):
    """Opens one file for reading again and again, holding every handle."""
    handles = []
    report = {"refused": None}
    for _ in range(op["count"]):
        try:
            handles.append(sftp.open(path_arg(op["remote"]), "rb"))
        except IOError as e:
            report["refused"] = str(e)
            break
    report["opened"] = len(handles)
    if "ready_file" in op:
        with open(op["ready_file"], "w", encoding="utf-8") as ready:
            ready.write(str(len(handles)))
        deadline = time.monotonic() + 60
        while not os.path.exists(op["release_file"]) and time.monotonic() < deadline:
            time.sleep(0.05)
    for f in handles[:op.get("close", 0)]:
        f.close()
    try:
        sftp.open(path_arg(op["remote"]), "rb").close()
        report["after_close"] = "ok"
    except IOError as e:
        report["after_close"] = str(e)
    return report


def run_op(sftp, transport, op):
    kind = op["op"]
    if kind == "put" and op.get("pipelined", True):
        attrs = sftp.put(op["local"], path_arg(op["remote"]))
        return stat_value(attrs)
    if kind == "put":
        # Each write acknowledged before the next: a refused write raises
        # with the server's text (paramiko's close ignores errors, so a
        # pipelined put may only see the file missing afterwards).
        with open(op["local"], "rb") as src, sftp.open(path_arg(op["remote"]), "wb") as f:
            while True:
                chunk = src.read(32768)
                if not chunk:
                    break
                f.write(chunk)
        return stat_value(sftp.stat(path_arg(op["remote"])))
    if kind == "get":
        sftp.get(path_arg(op["remote"]), op["local"])
        return os.path.getsize(op["local"])
    if kind == "read":
        with sftp.open(path_arg(op["remote"]), "rb") as f:
            data = f.read(op.get("max", 1 << 20))
        return {"len": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "text": data[:4096].decode("utf-8", "replace")}
    if kind == "wait_read":
        for _ in range(op["polls"]):
            try:
                sftp.stat(path_arg(op["remote"]))
                break
            except FileNotFoundError:
                time.sleep(op["poll_millis"] / 1000)
        return run_op(sftp, transport, {"op": "read", "remote": op["remote"]})
    if kind == "write":
        data = op.get("data", "").encode()
        with sftp.open(path_arg(op["remote"]), "wb") as f:
            f.write(data)
        return len(data)
    if kind == "listdir":
        return sorted(sftp.listdir(path_arg(op["path"])))
    if kind == "stat":
        return stat_value(sftp.stat(path_arg(op["path"])))
    if kind == "lstat":
        return stat_value(sftp.lstat(path_arg(op["path"])))
    if kind == "rename":
        sftp.rename(path_arg(op["from"]), path_arg(op["to"]))
        return None
    if kind == "posix_rename":
        sftp.posix_rename(path_arg(op["from"]), path_arg(op["to"]))
        return None
    if kind == "remove":
        sftp.remove(path_arg(op["path"]))
        return None
    if kind == "mkdir":
        sftp.mkdir(path_arg(op["path"]))
        return None
    if kind == "rmdir":
        sftp.rmdir(path_arg(op["path"]))
        return None
    if kind == "symlink":
        sftp.symlink(path_arg(op["target"]), path_arg(op["path"]))
        return None
    if kind == "hardlink":
        return extended(sftp, "hardlink@openssh.com", path_arg(op["from"]), path_arg(op["to"]))
    if kind == "readlink":
        return sftp.readlink(path_arg(op["path"]))
    if kind == "realpath":
        return sftp.normalize(path_arg(op["path"]))
    if kind == "utime":
        sftp.utime(path_arg(op["path"]), (op["atime"], op["mtime"]))
        return None
    if kind == "chmod":
        sftp.chmod(path_arg(op["path"]), op["mode"])
        return None
    if kind == "statvfs":
        return extended(sftp, "statvfs@openssh.com", path_arg(op["path"]))
    if kind == "sparse_write":
        return sparse_write(sftp, op)
    if kind == "open_many":
        return open_many(sftp, op)
    if kind == "write_then_cut":
        # Not pipelined: each write is acknowledged, so the server has surely
        # received the bytes before the cut.
        f = sftp.open(path_arg(op["remote"]), "wb")
        chunk = os.urandom(32768)
        left = op["bytes"]
        while left > 0:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n
        f.flush()
        cut_connection(transport)
        return None
    if kind == "read_then_cut":
        # Not pipelined either: the server has sent these bytes before the cut.
        f = sftp.open(path_arg(op["remote"]), "rb")
        left = op["bytes"]
        while left > 0:
            left -= len(f.read(min(left, 32768)))
        cut_connection(transport)
        return None
    if kind == "wait_closed":
        with open(op["ready_file"], "w") as ready:
            ready.write("connected\n")
        deadline = time.monotonic() + op.get("timeout", 10)
        while transport.is_active() and time.monotonic() < deadline:
            time.sleep(0.02)
        if transport.is_active():
            return {"closed": False}
        return {"closed": True, "closed_at": time.time()}
    raise ValueError("unknown op " + kind)


def connect_sshclient(plan):
    """paramiko's high-level client: tries the key files, then the password."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    timeout = plan.get("timeout", 10)
    if "agent_socket" in plan:
        os.environ["SSH_AUTH_SOCK"] = plan["agent_socket"]
    client.connect(
        "127.0.0.1", plan["port"], plan["user"],
        password=plan.get("password"),
        key_filename=plan.get("key_files"),
        look_for_keys=False, allow_agent=plan.get("allow_agent", False),
        timeout=timeout, banner_timeout=timeout, auth_timeout=plan.get("auth_timeout", 15),
    )
    return client.get_transport()


def connect(plan):
    timeout = plan.get("timeout", 10)
    source = (plan["source"], 0) if "source" in plan else None
    sock = socket.create_connection(("127.0.0.1", plan["port"]), timeout=timeout, source_address=source)
    if "proxy_header" in plan:
        sock.sendall(bytes.fromhex(plan["proxy_header"]))
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    transport.auth_timeout = timeout
    transport.start_client(timeout=timeout)
    return transport


def auth_outcome(attempt):
    """Runs one authentication call: "ok", "rejected", or
    "bad_type:<the methods the server allows>"."""
    try:
        attempt()
        return "ok"
    except paramiko.BadAuthenticationType as e:
        return "bad_type:" + ",".join(e.allowed_types)
    except paramiko.AuthenticationException:
        return "rejected"


def auth_step(transport, user, step):
    if step["method"] == "password":
        transport.auth_password(user, step["password"])
    elif step["method"] == "publickey":
        transport.auth_publickey(user, paramiko.PKey.from_path(step["key"]))
    else:
        transport.auth_interactive(user, lambda title, instructions, prompts: [])


def auth_steps(transport, plan, report):
    """Several methods on one connection, in turn, as a script falling back
    from one credential to the next does."""
    outcomes = report.setdefault("auth_steps", [])
    for step in plan["auth_steps"]:
        outcomes.append(auth_outcome(lambda: auth_step(transport, plan["user"], step)))
        if outcomes[-1] == "ok":
            return
    raise paramiko.AuthenticationException("every step was refused: " + ", ".join(outcomes))


def auth(transport, plan, report):
    if "auth_steps" in plan:
        auth_steps(transport, plan, report)
    elif "key" in plan:
        key = paramiko.PKey.from_path(plan["key"])
        transport.auth_publickey(plan["user"], key)
    else:
        transport.auth_password(plan["user"], plan["password"])


def auth_tries(plan, report):
    """Wrong passwords on one connection until the server closes it."""
    transport = connect(plan)
    outcomes = []
    for _ in range(plan.get("attempts", 8)):
        try:
            outcome = auth_outcome(lambda: transport.auth_password(plan["user"], plan["password"]))
            if outcome == "ok":
                outcomes.append("accepted")
                break
            outcomes.append(outcome)
        except (paramiko.SSHException, EOFError, OSError) as e:
            outcomes.append("closed:" + type(e).__name__)
            break
        if not transport.is_active():
            outcomes.append("closed:inactive")
            break
    report["outcomes"] = outcomes
    transport.close()


def main():
    plan = json.load(sys.stdin)
    report = {"results": []}
    auth_log = AuthLog()
    logging.getLogger("paramiko").addHandler(auth_log)
    logging.getLogger("paramiko").setLevel(logging.DEBUG)
    report["auth_log"] = auth_log.lines
    if plan.get("mode") == "auth_tries":
        try:
            auth_tries(plan, report)
        except Exception as e:  # noqa: BLE001 - reported to the test
            report["auth"] = "error"
            report["error"] = str(e)
            report["error_type"] = type(e).__name__
        print(json.dumps(report))
        return
    started = time.monotonic()
    try:
        if plan.get("client") == "sshclient":
            transport = connect_sshclient(plan)
        else:
            transport = connect(plan)
            auth(transport, plan, report)
    except paramiko.AuthenticationException as e:
        report["auth"] = "failed"
        report["auth_seconds"] = time.monotonic() - started
        report["error"] = str(e)
        report["error_type"] = type(e).__name__
        print(json.dumps(report))
        return
    except Exception as e:  # noqa: BLE001
        report["auth"] = "error"
        report["error"] = str(e)
        report["error_type"] = type(e).__name__
        print(json.dumps(report))
        return
    report["auth"] = "ok"
    report["auth_seconds"] = time.monotonic() - started
    try:
        sftp = paramiko.SFTPClient.from_transport(transport)
        # A reply that never comes fails the operation instead of hanging the script.
        sftp.get_channel().settimeout(plan.get("op_timeout", 20))
    except Exception as e:  # noqa: BLE001
        report["sftp"] = "error: " + str(e)
        print(json.dumps(report))
        return
    for op in plan.get("ops", []):
        entry = {"op": op["op"]}
        try:
            entry["value"] = run_op(sftp, transport, op)
            entry["ok"] = True
        except socket.timeout as e:
            entry["ok"] = False
            entry["error"] = "timeout: no reply from the server (" + str(e) + ")"
            report["results"].append(entry)
            report["stalled_at"] = len(report["results"]) - 1
            break
        except IOError as e:
            entry["ok"] = False
            entry["error"] = str(e)
            entry["errno"] = getattr(e, "errno", None)
        except Exception as e:  # noqa: BLE001
            entry["ok"] = False
            entry["error"] = type(e).__name__ + ": " + str(e)
            entry["trace"] = traceback.format_exc(limit=3)
        report["results"].append(entry)
        if op["op"] in ("write_then_cut", "read_then_cut"):
            print(json.dumps(report), flush=True)
            os._exit(0)
        if not transport.is_active():
            report["closed_after"] = len(report["results"])
            break
    try:
        sftp.close()
        transport.close()
    except Exception:  # noqa: BLE001
        pass
    print(json.dumps(report))


if __name__ == "__main__":
    main()
