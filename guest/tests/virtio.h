/* Shared between virtio.c and vsock.c. */
#ifndef STRATA_GUEST_VIRTIO_H
#define STRATA_GUEST_VIRTIO_H
#include "lib.h"

enum result { R_OK, R_FAIL, R_TIMEOUT, R_SKIP };
extern u64 g_timeout_ms; /* strata.timeout_ms: one request's answer */
extern u64 g_vsock_ms;   /* strata.vsock_ms: the whole vsock part */
extern u64 g_vsock_idle_ms; /* strata.vsock_idle_ms: quiet time after an echo before the guest closes */
enum result vsock_run(struct vdev *d);
#endif
