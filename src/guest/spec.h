/* spec.h: strata-init's instructions, parsed from the kernel command line (/proc/cmdline).
 * Pure parsing, no system calls: `strata-init --check-cmdline LINE` runs it on the host.
 *
 * The contract (every parameter is optional except a workload; names have a dot so that the
 * kernel neither interprets them nor passes them to init's environment, and init reads them
 * from /proc/cmdline; a value may be double-quoted; an unknown strata.* name is an error):
 *
 *   strata.root=DEV          root block device to mount and switch into, e.g. /dev/vda; without
 *                            it the workload runs in the root the kernel started init in
 *                            (an initramfs, or a disk given with root= init=/sbin/strata-init)
 *   strata.rootfstype=TYPE   its filesystem (default ext4)
 *   strata.rootflags=OPTS    comma-separated: ro rw nosuid nodev noexec noatime, the rest is
 *                            passed to the filesystem as data (default: rw, no data)
 *   strata.rootwait=MS       how long to wait for DEV to appear (default 1000)
 *   strata.ip=ADDR/PREFIX    IPv4 address of the interface, e.g. 10.0.0.2/24 (lo is always up)
 *   strata.gw=ADDR           IPv4 default gateway (needs strata.ip)
 *   strata.iface=NAME        the interface strata.ip is for (default eth0)
 *   strata.hostname=NAME     sethostname(2)
 *   strata.shutdown=MODE     how init ends the VM: poweroff (reboot(RB_POWER_OFF): needs ACPI),
 *                            reboot (RB_AUTOBOOT: the monitor ends the VM on the reset, e.g.
 *                            Firecracker-style through the i8042 with reboot=k, QEMU with
 *                            -no-reboot and reboot=t), or auto (default: poweroff when the
 *                            kernel has ACPI, /sys/firmware/acpi, else reboot; strata's own
 *                            guest kernel has no ACPI)
 *   strata.cmd=B64           the workload: base64 (standard or URL-safe alphabet, padding
 *                            optional) of a UTF-8 JSON object
 *                              {"args": ["sh", "-c", "echo hi"],   required, non-empty
 *                               "env": ["K=V", ...],                default: PATH and HOME
 *                               "cwd": "/",                         default "/"
 *                               "uid": 0, "gid": 0,                 default 0
 *                               "groups": [10, 20]}                 supplementary; default none
 *                            args[0] without a '/' is looked up in the PATH of "env" (PATH and
 *                            HOME are added when "env" lacks them); unknown keys are ignored.
 *   -- ARG...                without strata.cmd: the words after "--" on the command line
 *                            (the kernel hands them to init as argv) are the workload's args.
 *
 * The kernel command line is at most 2048 bytes on x86: a spec must fit in what is left.
 */
#ifndef STRATA_GUEST_SPEC_H
#define STRATA_GUEST_SPEC_H

#include <stddef.h>
#include <sys/types.h>

#define STRATA_MAX_GROUPS 64

struct strata_spec {
  /* root */
  char* root;
  char* rootfstype;
  unsigned long rootflags; /* MS_* */
  char* rootdata;          /* filesystem-specific options, or NULL */
  int rootwait_ms;
  /* network */
  char* iface;
  char* ip;          /* dotted quad, without the prefix */
  int prefix;        /* 0..32 */
  char* gw;          /* or NULL */
  char* hostname;    /* or NULL */
  int shutdown;      /* strata.shutdown: 0 auto, 1 reboot, 2 poweroff */
  /* workload */
  char** args; /* NULL-terminated */
  char** env;  /* NULL-terminated */
  char* cwd;
  unsigned uid, gid;
  unsigned groups[STRATA_MAX_GROUPS];
  size_t ngroups;
};

/* Parses a kernel command line (the text of /proc/cmdline). argv/argc: init's own arguments
 * (the workload when there is no strata.cmd). Returns 0, or -1 with a message in err. */
int strata_spec_parse(const char* cmdline, int argc, char** argv, struct strata_spec* out, char* err,
                      size_t errlen);

/* Decodes base64 (either alphabet, optional padding) into a NUL-terminated buffer
 * (malloc'ed); returns its length or -1 on bad input. */
long strata_base64_decode(const char* in, char** out);

#endif
