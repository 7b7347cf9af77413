/* virtio.elf: drives every virtio-mmio device it finds, by polling, and prints one result line
 * per device ("<dev>: OK", "<dev>: FAIL <why>", "<dev>: timeout ...") after its detail lines,
 * then "VIRTIO DONE" and powers off. Every wait is bounded by a TSC deadline.
 *
 *   blk   (type 2): reads sector 0 and prints its first 16 bytes as text and hex; writes
 *                   "strata-guest-wrote 1" to sector 1 and flushes, reads it back; with
 *                   VIRTIO_BLK_F_RO it attempts the write and expects IOERR; GET_ID -> serial;
 *                   with strata.blk_reread_ms=N, N ms later reads sector 0 again and prints it
 *                   ("blk: sector 0 again: ..."), which shows a backing file swapped meanwhile
 *                   (PATCH /drives/{id}).
 *   net   (type 1): sends one broadcast frame, ethertype 0x88b5, payload "strata-guest-frame";
 *                   posts RX buffers and prints the payload of the first 0x88b5 frame received.
 *   rng   (type 4): reads 32 bytes, prints them in hex, checks they are not all zero.
 *   vsock (type 19): vsock.c.
 *
 * Command line: strata.test=blk,net,rng,vsock (default: all found), strata.timeout_ms=5000,
 * strata.blk_reread_ms=0,
 * strata.net_rx_ms=2000, strata.vsock_ms=20000, strata.vsock_idle_ms=1000, tsc_khz=K. */
#include "virtio.h"

u64 g_timeout_ms, g_vsock_ms, g_vsock_idle_ms;
static u64 g_net_rx_ms, g_blk_reread_ms;
static char g_tests[128];
static int g_have_tests;

static int wanted(const char *name) {
  if (!g_have_tests) return 1;
  usize n = strlen(name);
  for (const char *p = g_tests; *p;) {
    const char *e = p;
    while (*e && *e != ',') e++;
    if ((usize)(e - p) == n && !memcmp(p, name, n)) return 1;
    p = *e ? e + 1 : e;
  }
  return 0;
}

/* ---------------------------------------------------------------- virtio-blk */
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

struct blk_hdr {
  u32 type, reserved;
  u64 sector;
};

static const char *blk_status_name(int s) {
  switch (s) {
    case VIRTIO_BLK_S_OK: return "OK";
    case VIRTIO_BLK_S_IOERR: return "IOERR";
    case VIRTIO_BLK_S_UNSUPP: return "UNSUPP";
    default: return "?";
  }
}

/* One request (header, optional data, status), waited for. Returns the status byte or -1 on
 * timeout. */
static struct blk_hdr *blk_hdr;  /* DMA memory, allocated per device by blk_run */
static volatile u8 *blk_status;
static int blk_req(struct vdev *d, struct vq *q, u32 type, u64 sector, void *data, u32 len) {
  struct blk_hdr *hdr = blk_hdr;
  volatile u8 *status = blk_status;
  hdr->type = type;
  hdr->reserved = 0;
  hdr->sector = sector;
  *status = 0xff;
  q->desc[0].addr = (usize)hdr;
  q->desc[0].len = sizeof *hdr;
  q->desc[0].flags = VIRTQ_DESC_F_NEXT;
  u16 st = 1;
  if (len) {
    q->desc[1].addr = (usize)data;
    q->desc[1].len = len;
    q->desc[1].flags = VIRTQ_DESC_F_NEXT | (type == VIRTIO_BLK_T_OUT ? 0 : VIRTQ_DESC_F_WRITE);
    q->desc[1].next = 2;
    st = 2;
  }
  q->desc[0].next = 1; /* the data descriptor, or the status one when there is no data */
  q->desc[st].addr = (usize)status;
  q->desc[st].len = 1;
  q->desc[st].flags = VIRTQ_DESC_F_WRITE;
  q->desc[st].next = 0;
  vq_submit(d, q, 0);
  u32 id, ulen;
  if (!vq_wait(q, &id, &ulen, g_timeout_ms)) return -1;
  return *status;
}

static enum result blk_run(struct vdev *d) {
  const char *err = virtio_begin(d, 1ull << VIRTIO_BLK_F_RO | 1ull << VIRTIO_BLK_F_FLUSH);
  struct vq q;
  if (!err) err = virtio_queue(d, &q, 0, 8);
  if (err) {
    printf("blk: FAIL %s\n", err);
    return R_FAIL;
  }
  blk_hdr = dma_alloc(sizeof *blk_hdr);
  blk_status = dma_alloc(1);
  virtio_driver_ok(d);
  u64 cap = vcfg64(d, 0);
  int ro = !!(d->features & 1ull << VIRTIO_BLK_F_RO);
  int flush = !!(d->features & 1ull << VIRTIO_BLK_F_FLUSH);
  printf("blk: capacity %lu sectors, read-only %s, flush %s, queue size %u\n", cap, ro ? "yes" : "no",
         flush ? "yes" : "no", q.num);
  u8 *buf = dma_alloc(512), *back = dma_alloc(512);
  int s = blk_req(d, &q, VIRTIO_BLK_T_IN, 0, buf, 512);
  if (s < 0) {
    printf("blk: timeout (read of sector 0 not answered in %lu ms)\n", g_timeout_ms);
    return R_TIMEOUT;
  }
  if (s != VIRTIO_BLK_S_OK) {
    printf("blk: FAIL read of sector 0: status %d (%s)\n", s, blk_status_name(s));
    return R_FAIL;
  }
  printf("blk: sector 0: \"");
  print_text_bytes(buf, 16);
  printf("\" hex ");
  print_hex_bytes(buf, 16);
  printf("\n");

  /* Write "strata-guest-wrote 1" (then zeros) to sector 1. */
  static const char pattern[] = "strata-guest-wrote 1";
  memset(buf, 0, 512);
  memcpy(buf, pattern, sizeof pattern - 1);
  if (cap < 2) {
    printf("blk: FAIL disk too small for the write test (%lu sectors)\n", cap);
    return R_FAIL;
  }
  s = blk_req(d, &q, VIRTIO_BLK_T_OUT, 1, buf, 512);
  if (s < 0) {
    printf("blk: timeout (write of sector 1 not answered in %lu ms)\n", g_timeout_ms);
    return R_TIMEOUT;
  }
  if (ro) {
    if (s == VIRTIO_BLK_S_OK) {
      printf("blk: FAIL read-only not enforced: write to sector 1 returned OK\n");
      return R_FAIL;
    }
    printf("blk: read-only enforced: write to sector 1 returned %s\n", blk_status_name(s));
  } else {
    if (s != VIRTIO_BLK_S_OK) {
      printf("blk: FAIL write of sector 1: status %d (%s)\n", s, blk_status_name(s));
      return R_FAIL;
    }
    if (flush) {
      s = blk_req(d, &q, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
      if (s < 0) {
        printf("blk: timeout (flush not answered in %lu ms)\n", g_timeout_ms);
        return R_TIMEOUT;
      }
      if (s != VIRTIO_BLK_S_OK) {
        printf("blk: FAIL flush: status %d (%s)\n", s, blk_status_name(s));
        return R_FAIL;
      }
    }
    s = blk_req(d, &q, VIRTIO_BLK_T_IN, 1, back, 512);
    if (s < 0) {
      printf("blk: timeout (read back of sector 1 not answered in %lu ms)\n", g_timeout_ms);
      return R_TIMEOUT;
    }
    if (s != VIRTIO_BLK_S_OK || memcmp(buf, back, 512)) {
      printf("blk: FAIL sector 1 read back %s (status %d)\n", s == VIRTIO_BLK_S_OK ? "differs" : "failed", s);
      return R_FAIL;
    }
    printf("blk: wrote sector 1: \"%s\"%s, read back ok\n", pattern, flush ? ", flushed" : " (no flush feature)");
  }

  /* GET_ID: up to 20 bytes, NUL-terminated when shorter. */
  u8 *id = dma_alloc(20);
  s = blk_req(d, &q, VIRTIO_BLK_T_GET_ID, 0, id, 20);
  if (s < 0) {
    printf("blk: timeout (GET_ID not answered in %lu ms)\n", g_timeout_ms);
    return R_TIMEOUT;
  }
  if (s == VIRTIO_BLK_S_OK) {
    usize n = 0;
    while (n < 20 && id[n]) n++;
    printf("blk: serial \"");
    print_text_bytes(id, n);
    printf("\"\n");
  } else {
    printf("blk: serial unavailable: GET_ID returned %s\n", blk_status_name(s));
  }
  if (g_blk_reread_ms) {
    printf("blk: reading sector 0 again in %lu ms\n", g_blk_reread_ms);
    delay_ms(g_blk_reread_ms);
    s = blk_req(d, &q, VIRTIO_BLK_T_IN, 0, buf, 512);
    if (s != VIRTIO_BLK_S_OK) {
      printf("blk: FAIL second read of sector 0: status %d\n", s);
      return R_FAIL;
    }
    printf("blk: sector 0 again: \"");
    print_text_bytes(buf, 16);
    printf("\"\n");
  }
  printf("blk: OK\n");
  return R_OK;
}

/* ---------------------------------------------------------------- virtio-net */
#define VIRTIO_NET_F_MAC 5
#define NET_HDR 12 /* struct virtio_net_hdr with num_buffers (VERSION_1) */
#define NET_RXN 16
#define NET_BUF 2048

static void print_mac(const u8 *m) {
  printf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

static enum result net_run(struct vdev *d) {
  const char *err = virtio_begin(d, 1ull << VIRTIO_NET_F_MAC);
  struct vq rx, tx;
  if (!err) err = virtio_queue(d, &rx, 0, NET_RXN);
  if (!err) err = virtio_queue(d, &tx, 1, 8);
  if (err) {
    printf("net: FAIL %s\n", err);
    return R_FAIL;
  }
  u8 mac[6] = {0x52, 0x54, 0x00, 0x5a, 0x5a, 0x01};
  if (d->features & 1ull << VIRTIO_NET_F_MAC)
    for (int i = 0; i < 6; i++) mac[i] = vcfg8(d, (u32)i);
  virtio_driver_ok(d);
  printf("net: mac ");
  print_mac(mac);
  printf(", rx queue %u, tx queue %u\n", rx.num, tx.num);

  /* RX buffers: one device-writable descriptor each (header + frame). */
  u8 *rxbuf[NET_RXN];
  for (u16 i = 0; i < rx.num; i++) {
    rxbuf[i] = dma_alloc(NET_BUF);
    rx.desc[i].addr = (usize)rxbuf[i];
    rx.desc[i].len = NET_BUF;
    rx.desc[i].flags = VIRTQ_DESC_F_WRITE;
    rx.avail->ring[i] = i;
  }
  barrier();
  rx.avail_idx = rx.num;
  rx.avail->idx = rx.avail_idx;
  barrier();
  vw(d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);

  /* TX: header (all zero: no offloads) + a minimum-size broadcast frame. */
  static const char payload[] = "strata-guest-frame";
  u8 *t = dma_alloc(NET_HDR + 60);
  u8 *f = t + NET_HDR;
  memset(f, 0xff, 6);
  memcpy(f + 6, mac, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  memcpy(f + 14, payload, sizeof payload - 1);
  tx.desc[0].addr = (usize)t;
  tx.desc[0].len = NET_HDR + 60;
  tx.desc[0].flags = 0;
  vq_submit(d, &tx, 0);
  u32 id, len;
  if (!vq_wait(&tx, &id, &len, g_timeout_ms)) {
    printf("net: timeout (TX frame not consumed in %lu ms)\n", g_timeout_ms);
    return R_TIMEOUT;
  }
  printf("net: sent broadcast frame, ethertype 0x88b5, 60 bytes, payload \"%s\"\n", payload);

  struct deadline dl;
  deadline_set(&dl, g_net_rx_ms);
  int others = 0;
  while (!deadline_passed(&dl)) {
    if (!vq_poll(&rx, &id, &len)) continue;
    if (id < rx.num && len >= NET_HDR + 14 && len <= NET_BUF) {
      u8 *r = rxbuf[id] + NET_HDR;
      u32 flen = len - NET_HDR;
      if (r[12] == 0x88 && r[13] == 0xb5) {
        u32 n = 0;
        while (14 + n < flen && n < 64 && r[14 + n]) n++;
        printf("net: received frame from ");
        print_mac(r + 6);
        printf(", ethertype 0x88b5, %u bytes, payload \"", flen);
        print_text_bytes(r + 14, n);
        printf("\"\n");
        printf("net: OK\n");
        return R_OK;
      }
      others++;
    } else {
      printf("net: bad RX used element id %u len %u\n", id, len);
    }
    if (id < rx.num) vq_submit(d, &rx, (u16)id); /* give the buffer back */
  }
  printf("net: no 0x88b5 frame received within %lu ms (%d other frames)\n", g_net_rx_ms, others);
  printf("net: OK\n");
  return R_OK;
}

/* ---------------------------------------------------------------- virtio-rng */
static enum result rng_run(struct vdev *d) {
  const char *err = virtio_begin(d, 0);
  struct vq q;
  if (!err) err = virtio_queue(d, &q, 0, 4);
  if (err) {
    printf("rng: FAIL %s\n", err);
    return R_FAIL;
  }
  virtio_driver_ok(d);
  u8 *buf = dma_alloc(32);
  u32 got = 0;
  for (int tries = 0; got < 32 && tries < 64; tries++) {
    q.desc[0].addr = (usize)(buf + got);
    q.desc[0].len = 32 - got;
    q.desc[0].flags = VIRTQ_DESC_F_WRITE;
    vq_submit(d, &q, 0);
    u32 id, len;
    if (!vq_wait(&q, &id, &len, g_timeout_ms)) {
      printf("rng: timeout (got %u of 32 bytes in %lu ms)\n", got, g_timeout_ms);
      return R_TIMEOUT;
    }
    got += len > 32 - got ? 32 - got : len;
  }
  if (got < 32) {
    printf("rng: FAIL only %u of 32 bytes after 64 requests\n", got);
    return R_FAIL;
  }
  printf("rng: 32 bytes: ");
  print_hex_bytes(buf, 32);
  printf("\n");
  int nz = 0;
  for (int i = 0; i < 32; i++) nz |= buf[i];
  if (!nz) {
    printf("rng: FAIL all 32 bytes are zero\n");
    return R_FAIL;
  }
  printf("rng: OK\n");
  return R_OK;
}

/* ---------------------------------------------------------------- main */
void guest_main(u32 start_info) {
  boot_init(start_info);
  printf("virtio guest: cmdline \"%s\"\n", g_cmdline);
  time_init(1);
  g_timeout_ms = cmdline_u64("strata.timeout_ms", 5000);
  g_net_rx_ms = cmdline_u64("strata.net_rx_ms", 2000);
  g_blk_reread_ms = cmdline_u64("strata.blk_reread_ms", 0);
  g_vsock_ms = cmdline_u64("strata.vsock_ms", 20000);
  g_vsock_idle_ms = cmdline_u64("strata.vsock_idle_ms", 1000);
  g_have_tests = cmdline_get("strata.test", g_tests, sizeof g_tests);
  virtio_discover(1);
  int n[4] = {0, 0, 0, 0};
  for (int i = 0; i < g_nvdevs; i++) {
    struct vdev *d = &g_vdevs[i];
    const char *name = virtio_name(d->id);
    enum result r;
    dma_reset();
    if (d->id != 1 && d->id != 2 && d->id != 4 && d->id != 19) {
      printf("%s: device type %u at 0x%lx not driven\n", name, d->id, (u64)d->base);
      r = R_SKIP;
    } else if (!wanted(name)) {
      printf("%s: skipped (not in strata.test)\n", name);
      r = R_SKIP;
    } else {
      printf("%s: device at 0x%lx\n", name, (u64)d->base);
      switch (d->id) {
        case 1: r = net_run(d); break;
        case 2: r = blk_run(d); break;
        case 4: r = rng_run(d); break;
        default: r = vsock_run(d); break;
      }
      virtio_reset(d); /* the device stops using our memory before the next one reuses it */
    }
    n[r]++;
  }
  printf("virtio: %d device(s): %d ok, %d failed, %d timeout, %d skipped\n", g_nvdevs, n[R_OK], n[R_FAIL],
         n[R_TIMEOUT], n[R_SKIP]);
  printf("VIRTIO DONE\n");
  power_off();
}
