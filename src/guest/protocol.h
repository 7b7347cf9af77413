/* protocol.h: what strata-init (the guest's PID 1) tells the host, shared by the guest and the
 * monitor side (C and C++).
 *
 * When the workload has ended, or when init itself failed before or while starting it, init
 * connects once to the host over vsock, AF_VSOCK SOCK_STREAM to CID 2 (VMADDR_CID_HOST) port
 * STRATA_INIT_VSOCK_PORT, writes exactly one line and closes the connection:
 *
 *   "exit N\n"            the workload ended; N is 0..255: its exit status, or 128+S when a
 *                         signal S killed it (as a shell reports it)
 *   "error E STEP\n"      init failed; E is one of the codes below, STEP its name (the word
 *                         after the number, e.g. "error 3 root\n"); the console holds the detail
 *
 * The same line is always printed on the console (the first serial port) as well, prefixed with
 * "strata-init: " ("strata-init: exit 7", "strata-init: error 3 root"), just before the
 * power-off: it is the fallback when there is no vsock device or nobody listens. The console's
 * line before an error line names the step, what it worked on and the errno, e.g.
 * "strata-init: mount /dev/vdb on /newroot (ext4): ENOENT".
 * A Firecracker-style monitor receives the connection on the unix socket "<uds_path>_1024".
 */
#ifndef STRATA_GUEST_PROTOCOL_H
#define STRATA_GUEST_PROTOCOL_H

#define STRATA_INIT_VSOCK_CID 2u     /* VMADDR_CID_HOST */
#define STRATA_INIT_VSOCK_PORT 1024u /* the host listens here for the exit line */
#define STRATA_INIT_LINE_MAX 128     /* an exit or error line is never longer (with its '\n') */
#define STRATA_INIT_CONSOLE_PREFIX "strata-init: "

/* Error codes ("error E STEP"): which step of init failed. */
enum strata_init_error {
  STRATA_INIT_E_EARLY = 1,    /* "early": mounting /dev, /proc or /sys, opening /dev/console */
  STRATA_INIT_E_CMDLINE = 2,  /* "cmdline": a bad strata.* parameter or workload spec */
  STRATA_INIT_E_ROOT = 3,     /* "root": the root device is missing or does not mount */
  STRATA_INIT_E_SWITCH = 4,   /* "switch_root": moving into the new root */
  STRATA_INIT_E_MOUNTS = 5,   /* "mounts": /dev/pts, /dev/shm, /run, /sys/fs/cgroup */
  STRATA_INIT_E_NET = 6,      /* "network": lo, the interface, its address, the route */
  STRATA_INIT_E_EXEC = 7,     /* "exec": cwd, uid/gid, or execve of the workload */
  STRATA_INIT_E_INTERNAL = 8, /* "internal": fork, pipes, out of memory */
};

static inline const char* strata_init_error_step(int e) {
  switch (e) {
    case STRATA_INIT_E_EARLY: return "early";
    case STRATA_INIT_E_CMDLINE: return "cmdline";
    case STRATA_INIT_E_ROOT: return "root";
    case STRATA_INIT_E_SWITCH: return "switch_root";
    case STRATA_INIT_E_MOUNTS: return "mounts";
    case STRATA_INIT_E_NET: return "network";
    case STRATA_INIT_E_EXEC: return "exec";
    case STRATA_INIT_E_INTERNAL: return "internal";
    default: return "unknown";
  }
}

#endif
