/* Shared runtime of the strata test guests (see lib.h). */
#include "lib.h"

#include <stdarg.h>

/* ---- strings (gcc may emit calls to memset/memcpy itself) ---- */
void *memset(void *d, int c, usize n) {
  u8 *p = d;
  while (n--) *p++ = (u8)c;
  return d;
}
void *memcpy(void *d, const void *s, usize n) {
  u8 *p = d;
  const u8 *q = s;
  while (n--) *p++ = *q++;
  return d;
}
int memcmp(const void *a, const void *b, usize n) {
  const u8 *p = a, *q = b;
  for (; n; n--, p++, q++)
    if (*p != *q) return *p < *q ? -1 : 1;
  return 0;
}
usize strlen(const char *s) {
  usize n = 0;
  while (s[n]) n++;
  return n;
}
int str_starts(const char *s, const char *prefix) {
  while (*prefix)
    if (*s++ != *prefix++) return 0;
  return 1;
}

/* ---- serial: 8250 at 0x3f8, polled; bounded wait so an absent UART cannot hang us ---- */
#define COM1 0x3f8
void putc_serial(char c) {
  for (int i = 0; i < 100000; i++)
    if (inb(COM1 + 5) & 0x20) break; /* LSR.THRE */
  outb(COM1, (u8)c);
}
void puts_serial(const char *s) {
  while (*s) {
    if (*s == '\n') putc_serial('\r');
    putc_serial(*s++);
  }
}

static void put_num(u64 v, int base, int width, int zero, int neg) {
  char buf[24];
  int n = 0;
  do {
    u64 d = v % (u64)base;
    buf[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= (u64)base;
  } while (v);
  if (neg) {
    if (zero) putc_serial('-');
    width--;
  }
  for (int i = n; i < width; i++) putc_serial(zero ? '0' : ' ');
  if (neg && !zero) putc_serial('-');
  while (n) putc_serial(buf[--n]);
}

void printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  for (const char *p = fmt; *p; p++) {
    if (*p != '%') {
      if (*p == '\n') putc_serial('\r');
      putc_serial(*p);
      continue;
    }
    p++;
    int zero = 0, width = 0, lng = 0, prec = -1;
    if (*p == '0') {
      zero = 1;
      p++;
    }
    while (*p >= '0' && *p <= '9') width = width * 10 + (*p++ - '0');
    if (*p == '.' && p[1] == '*') {
      prec = va_arg(ap, int);
      p += 2;
    }
    while (*p == 'l') {
      lng++;
      p++;
    }
    switch (*p) {
      case 'd': {
        s64 v = lng ? va_arg(ap, s64) : va_arg(ap, int);
        put_num(v < 0 ? (u64)-v : (u64)v, 10, width, zero, v < 0);
        break;
      }
      case 'u': put_num(lng ? va_arg(ap, u64) : va_arg(ap, u32), 10, width, zero, 0); break;
      case 'x': put_num(lng ? va_arg(ap, u64) : va_arg(ap, u32), 16, width, zero, 0); break;
      case 'p':
        puts_serial("0x");
        put_num((u64)(usize)va_arg(ap, void *), 16, 0, 0, 0);
        break;
      case 'c': putc_serial((char)va_arg(ap, int)); break;
      case 's': {
        const char *s = va_arg(ap, const char *);
        if (!s) s = "(null)";
        for (int i = 0; s[i] && (prec < 0 || i < prec); i++) putc_serial(s[i]);
        break;
      }
      case '%': putc_serial('%'); break;
      default: putc_serial('%'); putc_serial(*p); break;
    }
  }
  va_end(ap);
}
void print_hex_bytes(const u8 *p, usize n) {
  for (usize i = 0; i < n; i++) printf(i ? " %02x" : "%02x", p[i]);
}
void print_text_bytes(const u8 *p, usize n) {
  for (usize i = 0; i < n; i++) putc_serial(p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.');
}

/* ---- boot info ---- */
const char *g_cmdline = "";
u64 g_ram_top;
struct e820 {
  u64 addr, size;
  u32 type, reserved;
};
void boot_init(u32 si_paddr) {
  const struct hvm_start_info *si = (const struct hvm_start_info *)(usize)si_paddr;
  if (!si || si->magic != HVM_START_MAGIC) return;
  if (si->cmdline_paddr && si->cmdline_paddr < 0x100000000ull) g_cmdline = (const char *)(usize)si->cmdline_paddr;
  if (si->version >= 1 && si->memmap_paddr && si->memmap_entries) {
    const struct e820 *m = (const struct e820 *)(usize)si->memmap_paddr;
    for (u32 i = 0; i < si->memmap_entries && i < 128; i++)
      if (m[i].type == 1 && m[i].addr + m[i].size > g_ram_top) g_ram_top = m[i].addr + m[i].size;
  }
}
int cmdline_get(const char *key, char *out, usize n) {
  usize kl = strlen(key);
  const char *s = g_cmdline;
  while (*s) {
    while (*s == ' ') s++;
    const char *tok = s;
    while (*s && *s != ' ') s++;
    if ((usize)(s - tok) > kl && str_starts(tok, key) && tok[kl] == '=') {
      usize l = (usize)(s - tok) - kl - 1;
      if (l >= n) l = n - 1;
      memcpy(out, tok + kl + 1, l);
      out[l] = 0;
      return 1;
    }
  }
  return 0;
}
u64 parse_u64(const char *s, const char **end) {
  u64 v = 0;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s += 2;
    for (;; s++) {
      int d;
      if (*s >= '0' && *s <= '9') d = *s - '0';
      else if (*s >= 'a' && *s <= 'f') d = *s - 'a' + 10;
      else if (*s >= 'A' && *s <= 'F') d = *s - 'A' + 10;
      else break;
      v = v * 16 + (u64)d;
    }
  } else {
    while (*s >= '0' && *s <= '9') v = v * 10 + (u64)(*s++ - '0');
  }
  if (end) *end = s;
  return v;
}
u64 cmdline_u64(const char *key, u64 dflt) {
  char buf[32];
  if (!cmdline_get(key, buf, sizeof buf) || !buf[0]) return dflt;
  return parse_u64(buf, NULL);
}

/* ---- time ---- */
u64 g_tsc_khz;
static void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d) {
  __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}
static u16 pit_read(void) {
  outb(0x43, 0x00); /* latch channel 0 */
  u8 lo = inb(0x40);
  u8 hi = inb(0x40);
  return (u16)(lo | (hi << 8));
}
/* Channel 0 of the i8254 counts down at 1.193182 MHz: time 10 ms of it against the TSC.
 * Returns 0 when there is no PIT (the counter does not move). IF stays 0: no interrupt. */
static u64 pit_calibrate_khz(void) {
  outb(0x43, 0x34); /* channel 0, lo/hi byte, mode 2, binary */
  outb(0x40, 0xff);
  outb(0x40, 0xff);
  u16 prev = pit_read();
  u64 t0 = rdtsc();
  u32 elapsed = 0, same = 0;
  while (elapsed < 11932) {
    u16 now = pit_read();
    if (now == prev) {
      if (++same > 1000) return 0; /* it ticks every 0.84 us: a stuck counter means no PIT */
      continue;
    }
    same = 0;
    elapsed += (u16)(prev - now);
    prev = now;
  }
  u64 t1 = rdtsc();
  outb(0x43, 0x30); /* mode 0 (one-shot), leave it stopped at a long count */
  outb(0x40, 0xff);
  outb(0x40, 0xff);
  if (t1 <= t0) return 0;
  return (t1 - t0) * 1193182ull / ((u64)elapsed * 1000ull);
}
void time_init(int verbose) {
  const char *src = "tsc_khz=";
  g_tsc_khz = cmdline_u64("tsc_khz", 0);
  if (!g_tsc_khz) {
    u32 a, b, c, d;
    cpuid(0, &a, &b, &c, &d);
    if (a >= 0x15) {
      cpuid(0x15, &a, &b, &c, &d);
      if (a && b && c) {
        g_tsc_khz = (u64)c * b / a / 1000;
        src = "cpuid 0x15";
      }
    }
  }
  if (!g_tsc_khz) {
    g_tsc_khz = pit_calibrate_khz();
    src = "the PIT";
    if (g_tsc_khz < 100000 || g_tsc_khz > 20000000) g_tsc_khz = 0;
  }
  if (!g_tsc_khz) {
    g_tsc_khz = 2000000;
    src = "a guess (no PIT, no cpuid 0x15; set tsc_khz=)";
  }
  if (verbose) printf("time: TSC %lu kHz from %s\n", g_tsc_khz, src);
}
void deadline_set(struct deadline *d, u64 ms) {
  if (!g_tsc_khz) g_tsc_khz = 2000000;
  d->last = rdtsc();
  d->left = ms * g_tsc_khz;
}
int deadline_passed(struct deadline *d) {
  u64 now = rdtsc();
  if (now > d->last) { /* a TSC that went backwards (restored snapshot) counts as no time */
    u64 dt = now - d->last;
    d->left = dt >= d->left ? 0 : d->left - dt;
  }
  d->last = now;
  return d->left == 0;
}
void delay_ms(u64 ms) {
  struct deadline d;
  deadline_set(&d, ms);
  while (!deadline_passed(&d)) {
  }
}

/* ---- power ---- */
void power_off(void) {
  outb(0x600, 0x34); /* strata-vmm: ACPI PM1a control, SLP_TYP=5 | SLP_EN */
  outb(0xf4, 0x00);  /* QEMU isa-debug-exit (iobase=0xf4): QEMU exits with status (0<<1)|1 = 1 */
  for (;;) __asm__ volatile("cli; hlt");
}
void reboot(void) {
  outb(0x64, 0xfe); /* i8042: pulse the reset line */
  for (;;) __asm__ volatile("cli; hlt");
}

/* ---- DMA arena ---- */
#define ARENA_BASE 0x200000ul
#define ARENA_END 0x800000ul
static usize arena_next = ARENA_BASE;
void *dma_alloc(usize n) {
  n = (n + 4095) & ~4095ul;
  if (arena_next + n > ARENA_END) {
    printf("guest: DMA arena exhausted\n");
    return NULL;
  }
  void *p = (void *)arena_next;
  arena_next += n;
  memset(p, 0, n);
  return p;
}
void dma_reset(void) { arena_next = ARENA_BASE; }

/* ---- virtio-mmio ---- */
struct vdev g_vdevs[MAX_VDEVS];
int g_nvdevs;

const char *virtio_name(u32 id) {
  switch (id) {
    case 1: return "net";
    case 2: return "blk";
    case 3: return "console";
    case 4: return "rng";
    case 5: return "balloon";
    case 16: return "gpu";
    case 18: return "input";
    case 19: return "vsock";
    case 26: return "fs";
    default: return "unknown";
  }
}

static void probe(usize base, u32 irq, int verbose) {
  if (g_nvdevs >= MAX_VDEVS) return;
  if (mmio_r32(base + VIRTIO_MMIO_MAGIC) != 0x74726976) {
    if (verbose) printf("virtio: no device at 0x%lx (bad magic)\n", (u64)base);
    return;
  }
  u32 id = mmio_r32(base + VIRTIO_MMIO_DEVICE_ID);
  if (!id) return; /* an empty transport slot */
  struct vdev *d = &g_vdevs[g_nvdevs++];
  memset(d, 0, sizeof *d);
  d->base = base;
  d->irq = irq;
  d->id = id;
  d->version = mmio_r32(base + VIRTIO_MMIO_VERSION);
  if (verbose)
    printf("virtio: device at 0x%lx irq %u: type %u (%s), version %u\n", (u64)base, irq, id, virtio_name(id),
           d->version);
}

void virtio_discover(int verbose) {
  const char *key = "virtio_mmio.device=";
  const char *s = g_cmdline;
  int found = 0;
  g_nvdevs = 0;
  while (*s) {
    while (*s == ' ') s++;
    const char *tok = s;
    while (*s && *s != ' ') s++;
    if (!str_starts(tok, key)) continue;
    const char *p = tok + strlen(key);
    u64 size = parse_u64(p, &p);
    if (*p == 'K' || *p == 'k') size <<= 10, p++;
    else if (*p == 'M' || *p == 'm') size <<= 20, p++;
    if (*p != '@') continue;
    u64 base = parse_u64(p + 1, &p);
    u32 irq = 0;
    if (*p == ':') irq = (u32)parse_u64(p + 1, &p);
    if (!base || base >= 0x100000000ull || size < 0x100) {
      if (verbose) printf("virtio: ignoring %.*s (outside the mapped 4 GiB)\n", (int)(s - tok), tok);
      continue;
    }
    found++;
    probe((usize)base, irq, verbose);
  }
  if (!found) {
    if (verbose)
      printf("virtio: no virtio_mmio.device= on the command line; probing QEMU microvm's slots at 0xfeb00000\n");
    for (u32 i = 0; i < 24; i++) probe(0xfeb00000ul + i * 0x200ul, 0, 0);
  }
  if (verbose) printf("virtio: %d device(s)\n", g_nvdevs);
}

u32 vcfg32(struct vdev *d, u32 off) { return mmio_r32(d->base + VIRTIO_MMIO_CONFIG + off); }
u64 vcfg64(struct vdev *d, u32 off) {
  for (int tries = 0; tries < 8; tries++) {
    u32 gen = vr(d, VIRTIO_MMIO_CONFIG_GENERATION);
    u64 v = vcfg32(d, off) | (u64)vcfg32(d, off + 4) << 32;
    if (vr(d, VIRTIO_MMIO_CONFIG_GENERATION) == gen) return v;
  }
  return vcfg32(d, off) | (u64)vcfg32(d, off + 4) << 32;
}

void virtio_reset(struct vdev *d) {
  vw(d, VIRTIO_MMIO_STATUS, 0);
  for (int i = 0; i < 1000 && vr(d, VIRTIO_MMIO_STATUS) != 0; i++) {
  }
}
void virtio_fail(struct vdev *d) { vw(d, VIRTIO_MMIO_STATUS, vr(d, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_FAILED); }

const char *virtio_begin(struct vdev *d, u64 wanted) {
  if (d->version != 2) return "not a virtio-mmio version 2 (modern) transport";
  virtio_reset(d);
  if (vr(d, VIRTIO_MMIO_STATUS) != 0) return "device did not reset (status stays nonzero)";
  vw(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
  vw(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
  vw(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
  u64 hi = vr(d, VIRTIO_MMIO_DEVICE_FEATURES);
  vw(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  u64 lo = vr(d, VIRTIO_MMIO_DEVICE_FEATURES);
  d->offered = hi << 32 | lo;
  if (!(d->offered & (1ull << VIRTIO_F_VERSION_1))) {
    virtio_fail(d);
    return "device does not offer VIRTIO_F_VERSION_1";
  }
  d->features = (d->offered & wanted) | (1ull << VIRTIO_F_VERSION_1);
  vw(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
  vw(d, VIRTIO_MMIO_DRIVER_FEATURES, (u32)d->features);
  vw(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  vw(d, VIRTIO_MMIO_DRIVER_FEATURES, (u32)(d->features >> 32));
  vw(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
  if (!(vr(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK)) {
    virtio_fail(d);
    return "device refused FEATURES_OK";
  }
  return 0;
}

const char *virtio_queue(struct vdev *d, struct vq *q, u16 index, u16 max) {
  vw(d, VIRTIO_MMIO_QUEUE_SEL, index);
  if (vr(d, VIRTIO_MMIO_QUEUE_READY)) return "queue already ready after reset";
  u32 nmax = vr(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
  if (!nmax) return "queue not available (QueueNumMax 0)";
  u16 num = 1;
  while ((u32)num * 2 <= nmax && num * 2 <= max) num = (u16)(num * 2);
  memset(q, 0, sizeof *q);
  q->index = index;
  q->num = num;
  q->desc = dma_alloc(16u * num);
  q->avail = dma_alloc(6u + 2u * num);
  q->used = dma_alloc(6u + 8u * num);
  if (!q->desc || !q->avail || !q->used) return "out of DMA memory";
  vw(d, VIRTIO_MMIO_QUEUE_NUM, num);
  vw(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (u32)(usize)q->desc);
  vw(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
  vw(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (u32)(usize)q->avail);
  vw(d, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, 0);
  vw(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (u32)(usize)q->used);
  vw(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0);
  vw(d, VIRTIO_MMIO_QUEUE_READY, 1);
  if (vr(d, VIRTIO_MMIO_QUEUE_READY) != 1) return "QueueReady did not stick";
  return 0;
}

void virtio_driver_ok(struct vdev *d) { vw(d, VIRTIO_MMIO_STATUS, vr(d, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_DRIVER_OK); }

void vq_submit(struct vdev *d, struct vq *q, u16 head) {
  q->avail->ring[q->avail_idx % q->num] = head;
  barrier(); /* x86 keeps stores in order; the compiler must too */
  q->avail->idx = ++q->avail_idx;
  barrier();
  vw(d, VIRTIO_MMIO_QUEUE_NOTIFY, q->index);
}

int vq_poll(struct vq *q, u32 *id, u32 *len) {
  if (q->used->idx == q->last_used) return 0;
  barrier();
  volatile struct virtq_used_elem *e = &q->used->ring[q->last_used % q->num];
  if (id) *id = e->id;
  if (len) *len = e->len;
  q->last_used++;
  return 1;
}

int vq_wait(struct vq *q, u32 *id, u32 *len, u64 ms) {
  struct deadline dl;
  deadline_set(&dl, ms);
  for (;;) {
    if (vq_poll(q, id, len)) return 1;
    if (deadline_passed(&dl)) return 0;
  }
}
