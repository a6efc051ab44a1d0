#!/usr/bin/env python3
"""Uploads through a load balancer, as several clients at once, for
passerelle's cluster tests (tests/tests/cluster_haproxy.rs) and benchmark.

Each client is a thread with one session (paramiko SFTP, or ftplib over
explicit or implicit FTPS) opened from its own source address; it uploads
its files in turn and, when the session fails (the node behind it died),
opens a new one and uploads the file again, up to `attempts` times. A file
is acknowledged when the server confirmed it: SFTP's close answered (and
the stat paramiko makes after it), FTPS's 226.

Reads one JSON plan on standard input, prints one JSON report on standard
output.

Plan:
    {"host": "127.0.0.1", "sftp_port": N, "explicit_port": N, "implicit_port": N,
     "timeout": 10, "attempts": 5, "pause": 0.5 (seconds between attempts),
     "pace": 0 (seconds each client waits after each acknowledged upload),
     "clients": [{"protocol": "sftp" | "ftps" | "ftps-implicit", "source": "127.0.0.11",
                  "user": "alice", "password": "...",
                  "files": [{"local": "/path", "remote": "/inbox/a.csv"}, ...]}, ...]}

Report:
    {"seconds": 1.5, "bytes": N (acknowledged),
     "uploads": [{"remote": "/inbox/a.csv", "user": "alice", "protocol": "sftp",
                  "ok": true, "attempts": 1, "errors": ["..."]}, ...]}
"""

import ftplib
import json
import os
import socket
import ssl
import sys
import threading
import time

import paramiko

# The tests' FTPS client, beside this script: its TLS context (no certificate check).
from ftps_client import context as tls_context


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS
    session (as examples/ftplib_reuse.py explains)."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size


class ImplicitFTP_TLS(ReusingFTP_TLS):
    """Implicit FTPS: TLS from the first byte of the control connection."""

    def __init__(self, *args, **kwargs):
        self._sock = None
        super().__init__(*args, **kwargs)

    @property
    def sock(self):
        return self._sock

    @sock.setter
    def sock(self, value):
        if value is not None and not isinstance(value, ssl.SSLSocket):
            value = self.context.wrap_socket(value, server_hostname=self.host)
        self._sock = value


class SftpSession:
    def __init__(self, plan, client):
        timeout = plan.get("timeout", 10)
        sock = socket.create_connection(
            (plan["host"], plan["sftp_port"]), timeout=timeout, source_address=(client["source"], 0)
        )
        self.transport = paramiko.Transport(sock)
        self.transport.banner_timeout = timeout
        self.transport.auth_timeout = timeout
        self.transport.start_client(timeout=timeout)
        self.transport.auth_password(client["user"], client["password"])
        self.sftp = paramiko.SFTPClient.from_transport(self.transport)
        self.sftp.get_channel().settimeout(timeout)

    def put(self, local, remote):
        self.sftp.put(local, remote)

    def close(self):
        self.transport.close()


class FtpsSession:
    def __init__(self, plan, client):
        implicit = client["protocol"] == "ftps-implicit"
        kind = ImplicitFTP_TLS if implicit else ReusingFTP_TLS
        self.ftp = kind(context=tls_context(), timeout=plan.get("timeout", 10))
        # The PASV reply names the node behind the load balancer: the data
        # connection goes there, not to the balancer.
        self.ftp.trust_server_pasv_ipv4_address = True
        port = plan["implicit_port"] if implicit else plan["explicit_port"]
        self.ftp.connect(plan["host"], port, source_address=(client["source"], 0))
        self.ftp.login(client["user"], client["password"])
        self.ftp.prot_p()

    def put(self, local, remote):
        with open(local, "rb") as content:
            self.ftp.storbinary(f"STOR {remote}", content)

    def close(self):
        try:
            self.ftp.close()
        except (OSError, EOFError, ftplib.Error):
            pass


def run_client(plan, client, uploads, lock):
    session = None
    for file in client["files"]:
        outcome = {"remote": file["remote"], "user": client["user"], "protocol": client["protocol"], "ok": False,
                   "attempts": 0, "errors": [], "bytes": os.path.getsize(file["local"])}
        for _ in range(plan.get("attempts", 5)):
            outcome["attempts"] += 1
            try:
                if session is None:
                    session = (SftpSession if client["protocol"] == "sftp" else FtpsSession)(plan, client)
                session.put(file["local"], file["remote"])
                outcome["ok"] = True
                time.sleep(plan.get("pace", 0))
                break
            except Exception as e:  # noqa: BLE001 - any failure means: new session, try again
                outcome["errors"].append(f"{type(e).__name__}: {e}")
                if session is not None:
                    session.close()
                    session = None
                time.sleep(plan.get("pause", 0.5))
        with lock:
            uploads.append(outcome)
    if session is not None:
        session.close()


def main():
    plan = json.load(sys.stdin)
    uploads, lock = [], threading.Lock()
    started = time.monotonic()
    threads = [threading.Thread(target=run_client, args=(plan, c, uploads, lock)) for c in plan["clients"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    acknowledged = sum(u["bytes"] for u in uploads if u["ok"])
    json.dump({"seconds": seconds, "bytes": acknowledged, "uploads": uploads}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
