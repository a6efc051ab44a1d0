#!/usr/bin/env python3
"""Many SSH password logins at once (paramiko), for passerelle's defence tests.

Reads one JSON plan on standard input and prints one JSON report on standard
output.

Plan:
    {"port": 2222, "users": ["alice", ...] (connections are spread over these),
     "password": "...",
     "sources": ["127.0.0.30", ...] (connections are spread over these),
     "connections": 200, "timeout": 30}

Every connection starts at once (a barrier), tries the password once and
hangs up. Report:
    {"outcomes": {"accepted": N, "rejected": N, "error:<Type>": N},
     "seconds": wall time of the whole burst}
"""

import json
import socket
import sys
import threading
import time

import paramiko


def attempt(plan, user, source, barrier, outcomes, lock):
    timeout = plan.get("timeout", 30)
    outcome = "rejected"
    transport = None
    try:
        barrier.wait(timeout)
        sock = socket.create_connection(("127.0.0.1", plan["port"]), timeout=timeout, source_address=(source, 0))
        transport = paramiko.Transport(sock)
        transport.banner_timeout = timeout
        transport.auth_timeout = timeout
        transport.start_client(timeout=timeout)
        transport.auth_password(user, plan["password"])
        outcome = "accepted"
    except paramiko.AuthenticationException:
        outcome = "rejected"
    except Exception as e:  # noqa: BLE001 - counted in the report
        outcome = "error:" + type(e).__name__
    finally:
        if transport is not None:
            transport.close()
    with lock:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1


def main():
    plan = json.load(sys.stdin)
    count = plan["connections"]
    sources, users = plan["sources"], plan["users"]
    barrier = threading.Barrier(count)
    outcomes = {}
    lock = threading.Lock()
    threads = [
        threading.Thread(target=attempt, args=(plan, users[i % len(users)], sources[i % len(sources)], barrier, outcomes, lock), daemon=True)
        for i in range(count)
    ]
    start = time.time()
    for thread in threads:
        thread.start()
    deadline = start + plan.get("timeout", 30) * 2
    for thread in threads:
        thread.join(max(0.0, deadline - time.time()))
    print(json.dumps({"outcomes": outcomes, "seconds": time.time() - start}))


if __name__ == "__main__":
    main()
