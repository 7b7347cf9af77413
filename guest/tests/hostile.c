/* hostile.elf: feeds every virtio-mmio device it finds malformed virtqueues, to prove the
 * monitor survives them: descriptor loops, addresses beyond RAM, straddling the end of RAM and
 * inside the MMIO gap, lengths of 0xffffffff, out-of-range head/next indices, an avail idx far
 * ahead, queue sizes that are not a power of two or above QueueNumMax, rings placed outside
 * RAM or on the device's own registers, indirect tables inside indirect tables, notifies of
 * queues that do not exist. Each case starts from a freshly reset device, notifies, waits
 * hostile.settle_ms and prints the device status and used idx. Afterwards it checks whether
 * blk and rng devices still work. Then "HOSTILE DONE", then "still alive N" every
 * hostile.alive_ms (500) for hostile.alive (20) lines, then power off.
 *
 * Command line: hostile.settle_ms=50, hostile.alive=20, hostile.alive_ms=500, tsc_khz=K. */
#include "lib.h"

static u64 settle_ms;
static u64 ram_top;
static int cases;

#define FAR_ADDR 0x00007ffffffff000ul

static void settle(void) { delay_ms(settle_ms); }

static void report(struct vdev *d, u16 qi, const char *what) {
  u32 st = vr(d, VIRTIO_MMIO_STATUS);
  printf("hostile: %s@0x%lx q%u: %s: status 0x%x%s\n", virtio_name(d->id), (u64)d->base, qi, what, st,
         st & VIRTIO_STATUS_NEEDS_RESET ? " (NEEDS_RESET)" : "");
  cases++;
}

/* A device set up normally (all queues of its type, DRIVER_OK). 0 on failure. */
static int nqueues(struct vdev *d) {
  switch (d->id) {
    case 1: return 2;   /* net: rx, tx */
    case 19: return 3;  /* vsock: rx, tx, event */
    default: return 1;  /* blk, rng, and anything else: queue 0 */
  }
}
static int setup(struct vdev *d, struct vq *qs) {
  dma_reset();
  const char *err = virtio_begin(d, 1ull << VIRTIO_F_INDIRECT_DESC);
  for (int i = 0; !err && i < nqueues(d); i++) err = virtio_queue(d, &qs[i], (u16)i, 8);
  if (err) {
    printf("hostile: %s@0x%lx: setup failed: %s\n", virtio_name(d->id), (u64)d->base, err);
    return 0;
  }
  virtio_driver_ok(d);
  return 1;
}

/* Publishes `head` (any value) without touching our own bookkeeping sanity. */
static void publish(struct vdev *d, struct vq *q, u16 head) { vq_submit(d, q, head); }

/* A blk-looking request header in `buf` (so blk devices parse past the header). */
static void *valid_buf(void) {
  u32 *b = dma_alloc(4096);
  b[0] = 0; /* VIRTIO_BLK_T_IN */
  return b;
}

static void set_desc(struct vq *q, u16 i, u64 addr, u32 len, u16 flags, u16 next) {
  q->desc[i].addr = addr;
  q->desc[i].len = len;
  q->desc[i].flags = flags;
  q->desc[i].next = next;
}

typedef void (*case_fn)(struct vdev *d, struct vq *q);

static void c_self_loop(struct vdev *d, struct vq *q) {
  set_desc(q, 0, (usize)valid_buf(), 16, VIRTQ_DESC_F_NEXT, 0);
  publish(d, q, 0);
}
static void c_two_loop(struct vdev *d, struct vq *q) {
  u8 *b = valid_buf();
  set_desc(q, 0, (usize)b, 16, VIRTQ_DESC_F_NEXT, 1);
  set_desc(q, 1, (usize)b + 512, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
  publish(d, q, 0);
}
static void c_beyond_ram(struct vdev *d, struct vq *q) {
  set_desc(q, 0, (usize)valid_buf(), 16, VIRTQ_DESC_F_NEXT, 1);
  set_desc(q, 1, FAR_ADDR, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
  set_desc(q, 2, FAR_ADDR + 0x1000, 1, VIRTQ_DESC_F_WRITE, 0);
  publish(d, q, 0);
  set_desc(q, 3, FAR_ADDR, 64, 0, 0); /* readable too */
  publish(d, q, 3);
}
static void c_just_beyond_ram(struct vdev *d, struct vq *q) {
  set_desc(q, 0, (usize)valid_buf(), 16, VIRTQ_DESC_F_NEXT, 1);
  set_desc(q, 1, ram_top, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
  set_desc(q, 2, ram_top - 16, 4096, VIRTQ_DESC_F_WRITE, 0); /* straddles the end of RAM */
  publish(d, q, 0);
}
static void c_wrap_addr(struct vdev *d, struct vq *q) {
  set_desc(q, 0, (usize)valid_buf(), 16, VIRTQ_DESC_F_NEXT, 1);
  set_desc(q, 1, 0xfffffffffffff000ul, 0x2000, VIRTQ_DESC_F_WRITE, 0); /* addr + len wraps */
  publish(d, q, 0);
}
static void c_mmio_gap(struct vdev *d, struct vq *q) {
  set_desc(q, 0, (usize)valid_buf(), 16, VIRTQ_DESC_F_NEXT, 1);
  set_desc(q, 1, d->base, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2); /* its own registers */
  set_desc(q, 2, 0xfec00000ul, 1, VIRTQ_DESC_F_WRITE, 0);                  /* the IOAPIC */
  publish(d, q, 0);
  set_desc(q, 3, 0xe0000000ul, 4096, 0, 0); /* somewhere in the gap, readable */
  publish(d, q, 3);
}
static void c_len_max(struct vdev *d, struct vq *q) {
  u8 *b = valid_buf();
  set_desc(q, 0, (usize)b, 0xffffffffu, VIRTQ_DESC_F_NEXT, 1);
  set_desc(q, 1, (usize)b + 512, 0xffffffffu, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
  set_desc(q, 2, (usize)b + 1024, 0xffffffffu, VIRTQ_DESC_F_WRITE, 0);
  publish(d, q, 0);
}
static void c_len_zero(struct vdev *d, struct vq *q) {
  u8 *b = valid_buf();
  set_desc(q, 0, (usize)b, 0, VIRTQ_DESC_F_NEXT, 1);
  set_desc(q, 1, (usize)b, 0, VIRTQ_DESC_F_WRITE, 0);
  publish(d, q, 0);
}
static void c_bad_head(struct vdev *d, struct vq *q) {
  publish(d, q, 0xffff);
  publish(d, q, q->num); /* one past the table */
}
static void c_bad_next(struct vdev *d, struct vq *q) {
  set_desc(q, 0, (usize)valid_buf(), 16, VIRTQ_DESC_F_NEXT, 0xfff0);
  publish(d, q, 0);
}
static void c_avail_ahead(struct vdev *d, struct vq *q) {
  set_desc(q, 0, (usize)valid_buf(), 16, 0, 0);
  q->avail->ring[0] = 0;
  q->avail->idx = (u16)(q->avail_idx + 0x8000);
  barrier();
  vw(d, VIRTIO_MMIO_QUEUE_NOTIFY, q->index);
  settle();
  q->avail->idx = (u16)(q->avail_idx - 1); /* and then backwards */
  barrier();
  vw(d, VIRTIO_MMIO_QUEUE_NOTIFY, q->index);
}
static void c_indirect_nested(struct vdev *d, struct vq *q) {
  volatile struct virtq_desc *t1 = dma_alloc(4096), *t2 = dma_alloc(4096);
  u8 *b = valid_buf();
  t2[0].addr = (usize)b;
  t2[0].len = 16;
  t1[0].addr = (usize)t2;
  t1[0].len = 32;
  t1[0].flags = VIRTQ_DESC_F_INDIRECT;
  t1[1].addr = (usize)b + 512;
  t1[1].len = 512;
  t1[1].flags = VIRTQ_DESC_F_WRITE;
  set_desc(q, 0, (usize)t1, 32, VIRTQ_DESC_F_INDIRECT, 0);
  publish(d, q, 0);
}
static void c_indirect_bad(struct vdev *d, struct vq *q) {
  volatile struct virtq_desc *t = dma_alloc(4096);
  t[0].addr = (usize)valid_buf();
  t[0].len = 16;
  t[0].flags = VIRTQ_DESC_F_NEXT;
  t[0].next = 0; /* loop inside the table */
  set_desc(q, 0, (usize)t, 24, VIRTQ_DESC_F_INDIRECT, 0); /* length not a multiple of 16 */
  publish(d, q, 0);
  set_desc(q, 1, (usize)t, 0xfffffff0u, VIRTQ_DESC_F_INDIRECT, 0); /* a 256 M-entry table */
  publish(d, q, 1);
  set_desc(q, 2, FAR_ADDR, 64, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 0); /* table beyond RAM */
  publish(d, q, 2);
}

/* Cases that set the queue up themselves (raw register writes), on a reset device. */
static void raw_queue(struct vdev *d, u16 qi, u32 num, u64 desc, u64 avail, u64 used) {
  vw(d, VIRTIO_MMIO_QUEUE_SEL, qi);
  vw(d, VIRTIO_MMIO_QUEUE_NUM, num);
  vw(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (u32)desc);
  vw(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (u32)(desc >> 32));
  vw(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (u32)avail);
  vw(d, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (u32)(avail >> 32));
  vw(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (u32)used);
  vw(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (u32)(used >> 32));
  vw(d, VIRTIO_MMIO_QUEUE_READY, 1);
}
static int raw_begin(struct vdev *d) {
  dma_reset();
  const char *err = virtio_begin(d, 0);
  if (err) {
    printf("hostile: %s@0x%lx: setup failed: %s\n", virtio_name(d->id), (u64)d->base, err);
    return 0;
  }
  return 1;
}
static void raw_cases(struct vdev *d, u16 qi) {
  static const struct {
    const char *what;
    u32 num;
    int where; /* 0 valid memory, 1 beyond RAM, 2 on the device's registers, 3 wrapping */
  } rc[] = {
      {"queue size 3 (not a power of two)", 3, 0},
      {"queue size 0xffff (above QueueNumMax)", 0xffff, 0},
      {"queue size 0", 0, 0},
      {"rings beyond RAM", 8, 1},
      {"rings on the device's own registers", 8, 2},
      {"rings at addresses that wrap", 8, 3},
  };
  for (usize k = 0; k < sizeof rc / sizeof rc[0]; k++) {
    if (!raw_begin(d)) return;
    volatile struct virtq_desc *desc = dma_alloc(4096);
    volatile struct virtq_avail *avail = dma_alloc(4096);
    u64 dp = (usize)desc, ap = (usize)avail, up = (usize)dma_alloc(4096);
    if (rc[k].where == 1) dp = FAR_ADDR, ap = FAR_ADDR + 0x1000, up = FAR_ADDR + 0x2000;
    if (rc[k].where == 2) dp = ap = up = d->base;
    if (rc[k].where == 3) dp = 0xfffffffffffff000ul, ap = 0xffffffffffffff00ul, up = 0xfffffffffffffff0ul;
    for (u16 i = 0; i < 8; i++) {
      desc[i].addr = (usize)valid_buf();
      desc[i].len = 16;
      avail->ring[i] = i;
    }
    avail->idx = 8;
    raw_queue(d, qi, rc[k].num, dp, ap, up);
    virtio_driver_ok(d);
    vw(d, VIRTIO_MMIO_QUEUE_NOTIFY, qi);
    settle();
    report(d, qi, rc[k].what);
  }
}

static void bad_notify(struct vdev *d, struct vq *qs) {
  if (!setup(d, qs)) return;
  vw(d, VIRTIO_MMIO_QUEUE_NOTIFY, 0xffff);
  vw(d, VIRTIO_MMIO_QUEUE_NOTIFY, 7);
  vw(d, VIRTIO_MMIO_QUEUE_SEL, 0xffff);
  (void)vr(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
  vw(d, VIRTIO_MMIO_QUEUE_READY, 1);
  vw(d, 0x0ff0, 0xdeadbeef); /* a reserved register */
  (void)vr(d, 0x0ff0);
  settle();
  report(d, 0, "notify of queues 0xffff and 7, QueueSel 0xffff, reserved register");
}

static void notify_before_ok(struct vdev *d, struct vq *qs) {
  dma_reset();
  const char *err = virtio_begin(d, 0);
  if (!err) err = virtio_queue(d, &qs[0], 0, 8);
  if (err) return;
  set_desc(&qs[0], 0, (usize)valid_buf(), 16, 0, 0);
  publish(d, &qs[0], 0); /* no DRIVER_OK yet */
  settle();
  report(d, 0, "notify before DRIVER_OK");
}

/* After all that: does the device still do its job? */
static void still_works(struct vdev *d, struct vq *qs) {
  if (d->id != 2 && d->id != 4) return;
  if (!setup(d, qs)) return;
  struct vq *q = &qs[0];
  u8 *b = dma_alloc(4096);
  if (d->id == 2) {
    u32 *h = (u32 *)b;
    h[0] = 0, h[1] = 0, h[2] = 0, h[3] = 0; /* IN, sector 0 */
    b[1024] = 0xff;
    set_desc(q, 0, (usize)b, 16, VIRTQ_DESC_F_NEXT, 1);
    set_desc(q, 1, (usize)b + 512, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
    set_desc(q, 2, (usize)b + 1024, 1, VIRTQ_DESC_F_WRITE, 0);
  } else {
    set_desc(q, 0, (usize)b, 16, VIRTQ_DESC_F_WRITE, 0);
  }
  publish(d, q, 0);
  u32 id, len;
  int ok = vq_wait(q, &id, &len, 2000);
  if (d->id == 2)
    printf("hostile: blk@0x%lx: afterwards: read of sector 0 %s (status %d)\n", (u64)d->base,
           ok && b[1024] == 0 ? "works" : "FAILS", ok ? b[1024] : -1);
  else
    printf("hostile: rng@0x%lx: afterwards: read %s (%u bytes)\n", (u64)d->base, ok && len ? "works" : "FAILS",
           ok ? len : 0);
  virtio_reset(d);
}

void guest_main(u32 start_info) {
  boot_init(start_info);
  printf("hostile guest: cmdline \"%s\"\n", g_cmdline);
  time_init(1);
  settle_ms = cmdline_u64("hostile.settle_ms", 50);
  u64 alive = cmdline_u64("hostile.alive", 20);
  u64 alive_ms = cmdline_u64("hostile.alive_ms", 500);
  ram_top = g_ram_top ? g_ram_top : 0x8000000ul;
  if (ram_top > 0xc0000000ul) ram_top = 0xc0000000ul; /* "just beyond RAM" below the 4 GiB map */
  printf("hostile: RAM top 0x%lx%s\n", ram_top, g_ram_top ? "" : " (guessed: no PVH memmap)");
  virtio_discover(1);
  static const struct {
    const char *what;
    case_fn fn;
  } cs[] = {
      {"descriptor chained to itself", c_self_loop},
      {"two descriptors chained in a loop", c_two_loop},
      {"buffers far beyond RAM", c_beyond_ram},
      {"buffers at and straddling the end of RAM", c_just_beyond_ram},
      {"buffer whose addr + len wraps", c_wrap_addr},
      {"buffers in the MMIO gap (device registers, IOAPIC)", c_mmio_gap},
      {"lengths 0xffffffff", c_len_max},
      {"lengths 0", c_len_zero},
      {"avail ring head 0xffff and one past the table", c_bad_head},
      {"next index 0xfff0", c_bad_next},
      {"avail idx 0x8000 ahead, then backwards", c_avail_ahead},
      {"indirect table inside an indirect table", c_indirect_nested},
      {"indirect tables: bad length, huge, beyond RAM", c_indirect_bad},
  };
  struct vq qs[3];
  for (int i = 0; i < g_nvdevs; i++) {
    struct vdev *d = &g_vdevs[i];
    if (d->version != 2) {
      printf("hostile: %s@0x%lx: not virtio-mmio version 2, skipped\n", virtio_name(d->id), (u64)d->base);
      continue;
    }
    for (u16 qi = 0; qi < nqueues(d); qi++) {
      for (usize k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        if (!setup(d, qs)) break;
        cs[k].fn(d, &qs[qi]);
        settle();
        report(d, qi, cs[k].what);
      }
      raw_cases(d, qi);
    }
    bad_notify(d, qs);
    notify_before_ok(d, qs);
    virtio_reset(d);
    still_works(d, qs);
  }
  printf("hostile: %d cases on %d device(s)\n", cases, g_nvdevs);
  printf("HOSTILE DONE\n");
  for (u64 n = 1; n <= alive; n++) {
    delay_ms(alive_ms);
    printf("still alive %lu\n", n);
  }
  printf("hostile: powering off\n");
  power_off();
}
