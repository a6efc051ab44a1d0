#!/usr/bin/env python3
"""Python's ftplib against passerelle's FTPS: the few lines it needs.

passerelle (like vsftpd with require_ssl_reuse) accepts a data connection
only if its TLS handshake resumes the control connection's TLS session: that
proves the data connection comes from the client that logged in. ftplib's
FTP_TLS does not reuse the session on its own, so every transfer gets
"425 ... did not resume the control connection's TLS session". The subclass
below passes the control connection's session to each data connection; the
rest is plain ftplib.

Run as a script, it does what an integration script does: log in (explicit
FTPS, the server's certificate verified), upload a CSV to /inbox/employees/,
wait for its receipt in /outbox/employees/ and read it, list that folder,
download the receipt, upload then delete a temporary file.

    python3 ftplib_reuse.py --host 127.0.0.1 --port 2121 --user alice \\
        --cafile /var/lib/passerelle/tls/cert.pem --csv employees.csv --out receipts/

The password is read from the environment variable FTPS_PASSWORD. Prints the
receipt, the listing and what was done as one JSON object.
"""

import argparse
import ftplib
import io
import json
import os
import ssl
import sys
import time


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session."""

    def ntransfercmd(self, cmd, rest=None):
        # ftplib.FTP.ntransfercmd opens the data socket; the TLS wrapping is
        # done here instead of in FTP_TLS.ntransfercmd, with the session.
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size


def connect(host, port, user, password, cafile, tickets=True, timeout=30):
    """Logs in over explicit FTPS (AUTH TLS), data connections protected (PROT P).

    Without `tickets`, TLS 1.2 sessions are resumed by session ID instead of
    session tickets (both work)."""
    context = ssl.create_default_context(cafile=cafile)
    if not tickets:
        context.options |= ssl.OP_NO_TICKET
    ftp = ReusingFTP_TLS(context=context, timeout=timeout)
    ftp.connect(host, port)
    ftp.login(user, password)
    ftp.prot_p()
    return ftp


def read(ftp, path):
    """The content of the remote file `path`."""
    buffer = io.BytesIO()
    ftp.retrbinary(f"RETR {path}", buffer.write)
    return buffer.getvalue()


def wait_for(ftp, path, polls, pause):
    """Polls for `path` (at most `polls` times, `pause` seconds apart); its content."""
    for _ in range(polls):
        try:
            return read(ftp, path)
        except ftplib.error_perm:
            time.sleep(pause)
    raise TimeoutError(f"{path} did not appear")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=21)
    parser.add_argument("--user", required=True)
    parser.add_argument("--cafile", required=True, help="the server's certificate (or its CA's), PEM")
    parser.add_argument("--csv", required=True, help="the CSV to upload")
    parser.add_argument("--out", required=True, help="the directory the receipt is downloaded to")
    parser.add_argument("--polls", type=int, default=120)
    parser.add_argument("--pause", type=float, default=0.5)
    parser.add_argument("--no-tickets", action="store_true", help="resume TLS sessions by session ID only")
    args = parser.parse_args()

    name = os.path.basename(args.csv)
    receipt_name = f"{name}.result.json"
    temporary = f"/inbox/{os.path.splitext(name)[0]}.tmp"
    ftp = connect(args.host, args.port, args.user, os.environ["FTPS_PASSWORD"], args.cafile, not args.no_tickets)
    try:
        with open(args.csv, "rb") as csv:
            ftp.storbinary(f"STOR /inbox/employees/{name}", csv)
        receipt = wait_for(ftp, f"/outbox/employees/{receipt_name}", args.polls, args.pause)
        listing = ftp.nlst("/outbox/employees")
        downloaded = os.path.join(args.out, receipt_name)
        with open(downloaded, "wb") as out:
            ftp.retrbinary(f"RETR /outbox/employees/{receipt_name}", out.write)
        ftp.storbinary(f"STOR {temporary}", io.BytesIO(b"work in progress\n"))
        ftp.delete(temporary)
    finally:
        ftp.quit()
    json.dump(
        {
            "receipt": receipt.decode("utf-8"),
            "listing": listing,
            "downloaded": downloaded,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
