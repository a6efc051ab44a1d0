#!/usr/bin/env python3
"""A scriptable asyncssh SFTP client for passerelle's end-to-end tests.

The same plan and report as sftp_client.py (paramiko), for the operations a
client conformance test needs, so that one list of operations drives both.

Plan:
    {"port": 2222, "user": "alice", "password": "..." | "key": "/path/to/key",
     "host_keys": ["/path/to/host_key.pub", ...] (the only keys trusted for the
         server; without it the host key is not checked),
     "timeout": 10, "ops": [{"op": "put", "local": "...", "remote": "..."}, ...]}

Report:
    {"auth": "ok" | "failed" | "error", "error": "...", "error_type": "...",
     "auth_seconds": 0.4 (from connecting until logged in or refused),
     "results": [{"op": "...", "ok": true, "value": ...} |
                 {"op": "...", "ok": false, "error": "..."}]}

Operations: put, get, read, wait_read (read once `remote` exists, looking
for it up to `polls` times, `poll_millis` apart), listdir, stat, remove.
"""

import asyncio
import hashlib
import json
import os
import sys
import time

import asyncssh


def connect_options(plan):
    """Only the plan's credentials: no agent, no key of ~/.ssh."""
    options = {
        "port": plan["port"],
        "username": plan["user"],
        "agent_path": None,
        "client_keys": [plan["key"]] if "key" in plan else [],
        "password": plan.get("password"),
        "connect_timeout": plan.get("timeout", 10),
        "login_timeout": plan.get("timeout", 10),
    }
    if "host_keys" in plan:
        trusted = [asyncssh.read_public_key(path) for path in plan["host_keys"]]
        options["known_hosts"] = (trusted, [], [])
    else:
        options["known_hosts"] = None
    return options


async def read(sftp, remote):
    async with sftp.open(remote, "rb") as f:
        data = await f.read()
    return {"len": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "text": data[:4096].decode("utf-8", "replace")}


async def run_op(sftp, op):
    kind = op["op"]
    if kind == "put":
        await sftp.put(op["local"], op["remote"])
        return (await sftp.stat(op["remote"])).size
    if kind == "get":
        await sftp.get(op["remote"], op["local"])
        return os.path.getsize(op["local"])
    if kind == "read":
        return await read(sftp, op["remote"])
    if kind == "wait_read":
        for _ in range(op["polls"]):
            if await sftp.exists(op["remote"]):
                break
            await asyncio.sleep(op["poll_millis"] / 1000)
        return await read(sftp, op["remote"])
    if kind == "listdir":
        return sorted(name for name in await sftp.listdir(op["path"]) if name not in (".", ".."))
    if kind == "stat":
        attrs = await sftp.stat(op["path"])
        return {"size": attrs.size, "mode": attrs.permissions}
    if kind == "remove":
        await sftp.remove(op["path"])
        return None
    raise ValueError("unknown op " + kind)


async def run(plan, report):
    started = time.monotonic()
    try:
        conn = await asyncssh.connect("127.0.0.1", **connect_options(plan))
    except asyncssh.PermissionDenied as e:
        report["auth"] = "failed"
        report["auth_seconds"] = time.monotonic() - started
        report["error"] = str(e)
        report["error_type"] = type(e).__name__
        return
    report["auth"] = "ok"
    report["auth_seconds"] = time.monotonic() - started
    async with conn:
        async with conn.start_sftp_client() as sftp:
            for op in plan.get("ops", []):
                entry = {"op": op["op"]}
                try:
                    entry["value"] = await run_op(sftp, op)
                    entry["ok"] = True
                except (asyncssh.Error, OSError) as e:
                    entry["ok"] = False
                    entry["error"] = type(e).__name__ + ": " + str(e)
                report["results"].append(entry)


def main():
    plan = json.load(sys.stdin)
    report = {"results": []}
    try:
        asyncio.run(run(plan, report))
    except Exception as e:  # noqa: BLE001 - reported to the test
        report.setdefault("auth", "error")
        report["error"] = str(e)
        report["error_type"] = type(e).__name__
    print(json.dumps(report))


if __name__ == "__main__":
    main()
