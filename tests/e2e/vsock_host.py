#!/usr/bin/env python3
"""Host side of the vsock checks (Firecracker's convention, as strata-vmm implements it):
  - listens on <uds>_5678 for the guest's connection and answers "pong-from-host";
  - connects to <uds>, writes "CONNECT 1234\n", expects "OK <port>\n", sends "echo-me" and
    expects it back (the guest echoes).
Prints one line per result; exits 0 when both worked within the time limit."""
import os, socket, sys, threading, time

uds, deadline = sys.argv[1], time.time() + float(sys.argv[2] if len(sys.argv) > 2 else 30)
results = {}

def guest_initiated():
    path = uds + "_5678"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(max(1, deadline - time.time()))
    try:
        c, _ = srv.accept()
        c.settimeout(5)
        data = c.recv(100)
        c.sendall(b"pong-from-host")
        results["guest"] = data.decode(errors="replace")
        c.close()
    except OSError as e:
        results["guest"] = "error: %s" % e

t = threading.Thread(target=guest_initiated)
t.start()
while not os.path.exists(uds) and time.time() < deadline:
    time.sleep(0.05)
answer = None
while time.time() < deadline:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(uds)
        s.settimeout(5)
        s.sendall(b"CONNECT 1234\n")
        line = b""
        while not line.endswith(b"\n"):
            b = s.recv(1)
            if not b:
                break
            line += b
        if not line.startswith(b"OK "):
            s.close(); time.sleep(0.2); continue
        s.sendall(b"echo-me")
        got = b""
        while len(got) < 7:
            b = s.recv(100)
            if not b:
                break
            got += b
        answer = got.decode(errors="replace")
        s.close()
        break
    except OSError:
        s.close()
        time.sleep(0.2)
t.join()
print("host-initiated echo:", answer)
print("guest-initiated message:", results.get("guest"))
sys.exit(0 if answer == "echo-me" and results.get("guest") == "ping-from-guest" else 1)
