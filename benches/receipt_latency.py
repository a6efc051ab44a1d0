"""Close -> receipt latency of passerelle's import pipeline, as a client sees it.

Run by benches/receipt-latency.sh (which starts the server); not on its own.
For each protocol, uploads N distinct 1,000-row CSV files one after the other
(paramiko for SFTP, ftplib over explicit TLS for FTPS), and after each upload
has been acknowledged (SFTP: the reply to CLOSE; FTPS: the 226 of the
transfer) polls the receipt in the tenant's outbox on disk every millisecond
until it holds the verdict of that file (status not "received", its SHA-256).
Prints p50, p99 and the largest latency per protocol.
"""

import argparse
import hashlib
import io
import json
import os
import statistics
import sys
import time

import paramiko

# The FTPS client of the examples: data connections resume the TLS session.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from ftplib_reuse import connect  # noqa: E402

POLL_SECONDS = 0.001
VERDICT_TIMEOUT = 60.0


def csv_rows(first, rows):
    lines = ["employee_id;email;hired_on;salary"]
    lines += [f"{i};e{i}@example.com;10/12/2025;{i % 9000},50" for i in range(first, first + rows)]
    return ("\n".join(lines) + "\n").encode()


def wait_verdict(receipt, sha256, closed):
    while True:
        try:
            with open(receipt, "rb") as f:
                data = json.loads(f.read())
            if data.get("status") != "received" and data.get("sha256") == sha256:
                return time.perf_counter() - closed
        except (FileNotFoundError, ValueError):
            pass
        if time.perf_counter() - closed > VERDICT_TIMEOUT:
            raise SystemExit(f"no verdict in {receipt} after {VERDICT_TIMEOUT} s")
        time.sleep(POLL_SECONDS)


def run(upload, args, protocol, offset):
    latencies = []
    for n in range(args.uploads):
        body = csv_rows(offset + n * args.rows, args.rows)
        sha256 = hashlib.sha256(body).hexdigest()
        name = f"{protocol}-{n:04d}.csv"
        upload(name, body)
        closed = time.perf_counter()
        receipt = os.path.join(args.outbox, "employees", f"{name}.result.json")
        latencies.append(wait_verdict(receipt, sha256, closed))
    return latencies


def report(protocol, latencies):
    ms = sorted(x * 1000 for x in latencies)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * len(ms))) - 1)]
    print(f"{protocol:5} {len(ms):6d} uploads  close->receipt p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {ms[-1]:7.1f} ms")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sftp-port", type=int, required=True)
    parser.add_argument("--ftps-port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()

    transport = paramiko.Transport(("127.0.0.1", args.sftp_port))
    transport.connect(username=args.user, password=args.password)
    sftp = paramiko.SFTPClient.from_transport(transport)

    def sftp_upload(name, body):
        # putfo returns once the server answered the CLOSE.
        sftp.putfo(io.BytesIO(body), f"/inbox/employees/{name}", confirm=False)

    sftp_latencies = run(sftp_upload, args, "sftp", 1_000_000)
    sftp.close()
    transport.close()

    ftp = connect("127.0.0.1", args.ftps_port, args.user, args.password, args.cafile)

    def ftps_upload(name, body):
        # storbinary returns after the transfer's 226.
        ftp.storbinary(f"STOR /inbox/employees/{name}", io.BytesIO(body))

    ftps_latencies = run(ftps_upload, args, "ftps", 5_000_000)
    ftp.quit()

    report("sftp", sftp_latencies)
    report("ftps", ftps_latencies)


if __name__ == "__main__":
    main()
