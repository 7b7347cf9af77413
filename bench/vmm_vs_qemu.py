#!/usr/bin/env python3
"""strata-vmm against QEMU's microvm (both on /dev/kvm), side by side in one run.

  boot:    the project's hello.elf test guest booted through its PVH entry to its marker
           ("hello" on the serial port) and powered off; wall time from spawning the monitor
           to the marker on its stdout, and to its exit, the two monitors alternating;
           medians and the ratio.
  rss:     the monitor's peak RSS over those runs (getrusage of the child: ru_maxrss).
  restore: a counter.elf VM paused and snapshotted; a new strata-vmm process restores it with
           PUT /snapshot/load (resume_vm) -- the API call's latency, and spawn-to-running.
  rate:    VMs started per second: N hello VMs, P at a time, for each monitor.

Guest code runs in KVM's instruction emulator on these machines (ENVIRONMENT.md), so the
guest is tiny on purpose: the figures are the monitors' own costs.
Usage: bench/vmm_vs_qemu.py BUILD_DIR [ROUNDS]"""
import json, os, resource, shutil, socket, statistics, subprocess, sys, tempfile, time

build = sys.argv[1] if len(sys.argv) > 1 else "build"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
vmm = os.path.join(build, "bin", "strata-vmm")
guests = os.path.join(build, "guest")
hello = os.path.join(guests, "hello.elf")
qemu = shutil.which("qemu-system-x86_64")
QEMU = [qemu, "-M", "microvm,x-option-roms=off,rtc=off", "-enable-kvm", "-cpu", "host,-arch-capabilities",
        "-m", "128", "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-kernel", hello]
STRATA = [vmm, "--kernel", hello, "--mem", "128"]


def timed(cmd, ok_codes):
    """Runs cmd; returns (seconds to the marker on its stdout, seconds to its exit)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = b""
    marker = None
    while True:
        b = os.read(p.stdout.fileno(), 4096)
        if not b:
            break
        out += b
        if marker is None and b"hello" in out:
            marker = time.perf_counter() - t0
    code = p.wait()
    done = time.perf_counter() - t0
    if code not in ok_codes or marker is None:
        sys.exit("bench: %s failed (exit %d): %s" % (cmd[0], code, out.decode(errors="replace")[-500:]))
    return marker, done


def peak_rss_kib(cmd):
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=60)
    return int(p.stderr.decode().strip().splitlines()[-1])


def api(sock, method, path, body=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    data = json.dumps(body) if body is not None else ""
    req = "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        method, path, len(data), data)
    s.sendall(req.encode())
    resp = b""
    while b"\r\n\r\n" not in resp:
        resp += s.recv(4096)
    head, _, rest = resp.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        rest += s.recv(4096)
    s.close()
    return status, rest


def wait_sock(path):
    for _ in range(400):
        if os.path.exists(path):
            return
        time.sleep(0.005)
    sys.exit("bench: %s never appeared" % path)


def restore_figures(n):
    work = tempfile.mkdtemp(prefix="strata-vmm-bench.")
    try:
        sock = os.path.join(work, "a.sock")
        p = subprocess.Popen([vmm, "--api-sock", sock], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        wait_sock(sock)
        api(sock, "PUT", "/boot-source", {"kernel_image_path": os.path.join(guests, "counter.elf"),
                                          "boot_args": "console=ttyS0 delay=50"})
        api(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128})
        api(sock, "PUT", "/actions", {"action_type": "InstanceStart"})
        time.sleep(0.5)
        api(sock, "PATCH", "/vm", {"state": "Paused"})
        st, body = api(sock, "PUT", "/snapshot/create", {"snapshot_type": "Full",
                                                          "snapshot_path": os.path.join(work, "snap.json"),
                                                          "mem_file_path": os.path.join(work, "snap.mem")})
        p.terminate()
        p.wait()
        if st != 204:
            sys.exit("bench: snapshot/create failed: %s" % body)
        load, total = [], []
        for i in range(n):
            sock = os.path.join(work, "r%d.sock" % i)
            t0 = time.perf_counter()
            p = subprocess.Popen([vmm, "--api-sock", sock], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            wait_sock(sock)
            t1 = time.perf_counter()
            st, body = api(sock, "PUT", "/snapshot/load", {"snapshot_path": os.path.join(work, "snap.json"),
                                                            "mem_backend": {"backend_type": "File",
                                                                            "backend_path": os.path.join(work, "snap.mem")},
                                                            "resume_vm": True})
            t2 = time.perf_counter()
            if st != 204:
                sys.exit("bench: snapshot/load failed: %s" % body)
            load.append(t2 - t1)
            total.append(t2 - t0)
            p.terminate()
            p.wait()
        return statistics.median(load), statistics.median(total), os.path.getsize(os.path.join(work, "snap.mem")), \
            int(subprocess.run(["du", "-k", os.path.join(work, "snap.mem")], capture_output=True).stdout.split()[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rate(cmd, ok, n, par):
    t0 = time.perf_counter()
    running = []
    started = 0
    while started < n or running:
        while started < n and len(running) < par:
            running.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
            started += 1
        p = running.pop(0)
        if p.wait() not in ok:
            sys.exit("bench: %s failed during the rate run" % cmd[0])
    return n / (time.perf_counter() - t0)


def main():
    if not qemu:
        sys.exit("bench: qemu-system-x86_64 missing (scripts/install-deps.sh)")
    for f in (vmm, hello):
        if not os.path.exists(f):
            sys.exit("bench: %s missing: build first" % f)
    # Warm both (page cache, KVM module state).
    timed(STRATA, (0,))
    timed(QEMU, (1,))
    ours, theirs, ours_exit, theirs_exit = [], [], [], []
    for _ in range(rounds):
        m, e = timed(STRATA, (0,))
        ours.append(m)
        ours_exit.append(e)
        m, e = timed(QEMU, (1,))
        theirs.append(m)
        theirs_exit.append(e)
    rss_ours = statistics.median(peak_rss_kib(STRATA) for _ in range(5))
    rss_theirs = statistics.median(peak_rss_kib(QEMU) for _ in range(5))
    load, total, mem_size, mem_kib = restore_figures(max(5, rounds // 2))
    n = max(20, rounds * 2)
    rate_ours = rate(STRATA, (0,), n, 4)
    rate_theirs = rate(QEMU, (1,), n, 4)
    mo, mt = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
    print("vmm_vs_qemu: %d rounds, hello.elf (PVH) to its marker and power-off, on /dev/kvm" % rounds)
    print("%-34s %12s %12s %8s" % ("", "strata-vmm", "qemu microvm", "ratio"))
    eo, et = statistics.median(ours_exit) * 1000, statistics.median(theirs_exit) * 1000
    print("%-34s %10.1f ms %10.1f ms %7.2fx" % ("spawn to marker (median)", mo, mt, mo / mt))
    print("%-34s %10.1f ms %10.1f ms %7.2fx" % ("spawn to exit after power-off", eo, et, eo / et))
    print("%-34s %9.0f KiB %9.0f KiB %7.2fx" % ("monitor peak RSS (median)", rss_ours, rss_theirs, rss_ours / rss_theirs))
    print("%-34s %8.1f /s %10.1f /s %7.2fx" % ("VMs started per second (4 at once)", rate_ours, rate_theirs, rate_ours / rate_theirs))
    print("%-34s %10.2f ms" % ("snapshot/load API call (median)", load * 1000))
    print("%-34s %10.2f ms" % ("spawn to restored+running (median)", total * 1000))
    print("%-34s %7d MiB file, %d KiB on disk (untouched pages are holes)" % ("snapshot memory", mem_size >> 20, mem_kib))


main()
