/* Shared runtime of the strata test guests: port I/O, the 8250 serial port, a small printf,
 * the kernel command line (PVH start_info), time (TSC), power off, a DMA arena, and a polled
 * virtio-mmio (version 2) split-queue driver core. Freestanding: no libc, no interrupts. */
#ifndef STRATA_GUEST_LIB_H
#define STRATA_GUEST_LIB_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef signed long s64;
typedef unsigned long usize;
#define NULL ((void *)0)
#define barrier() __asm__ volatile("" ::: "memory")

/* ---- port I/O, MMIO ---- */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) {
  u8 v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline u32 mmio_r32(usize a) { return *(volatile u32 *)a; }
static inline void mmio_w32(usize a, u32 v) { *(volatile u32 *)a = v; }
static inline u8 mmio_r8(usize a) { return *(volatile u8 *)a; }

/* ---- strings ---- */
void *memset(void *d, int c, usize n);
void *memcpy(void *d, const void *s, usize n);
int memcmp(const void *a, const void *b, usize n);
usize strlen(const char *s);
int str_starts(const char *s, const char *prefix);

/* ---- serial console and printf (%s %c %d %u %x %p, l/ll, width, 0-pad, %.*s) ---- */
void putc_serial(char c);
void puts_serial(const char *s);
void printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void print_hex_bytes(const u8 *p, usize n);   /* "0a 1b ..." */
void print_text_bytes(const u8 *p, usize n);  /* printable ASCII, others as '.' */

/* ---- boot info and command line ---- */
struct hvm_start_info {
  u32 magic; /* 0x336ec578 */
  u32 version;
  u32 flags;
  u32 nr_modules;
  u64 modlist_paddr;
  u64 cmdline_paddr;
  u64 rsdp_paddr;
  u64 memmap_paddr;   /* version >= 1 */
  u32 memmap_entries; /* version >= 1 */
  u32 reserved;
};
#define HVM_START_MAGIC 0x336ec578u
extern const char *g_cmdline;  /* "" when none */
extern u64 g_ram_top;          /* highest RAM address + 1 from the PVH memmap (0: unknown) */
void boot_init(u32 start_info_paddr);
/* cmdline_get("delay", buf, n): value of the first "delay=..." token; 1 if found. */
int cmdline_get(const char *key, char *out, usize n);
u64 cmdline_u64(const char *key, u64 dflt);  /* decimal or 0x-hex */
u64 parse_u64(const char *s, const char **end);

/* ---- time: TSC, its rate taken from tsc_khz= / CPUID 0x15,0x16 / the PIT / 2 GHz ---- */
static inline u64 rdtsc(void) {
  u32 lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((u64)hi << 32) | lo;
}
void time_init(int verbose);
extern u64 g_tsc_khz;
/* A deadline survives the TSC jumping backwards (snapshot restored in a new process). */
struct deadline { u64 last, left; };
void deadline_set(struct deadline *d, u64 ms);
int deadline_passed(struct deadline *d);
void delay_ms(u64 ms);

/* ---- power ---- */
void power_off(void) __attribute__((noreturn));
void reboot(void) __attribute__((noreturn));

/* ---- DMA arena: identity-mapped RAM from 2 MiB up, page-aligned, zeroed ---- */
void *dma_alloc(usize n);
void dma_reset(void);

/* ---- virtio-mmio v2 ---- */
#define VIRTIO_MMIO_MAGIC 0x000
#define VIRTIO_MMIO_VERSION 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_VENDOR_ID 0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL 0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_MMIO_QUEUE_NUM 0x038
#define VIRTIO_MMIO_QUEUE_READY 0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK 0x064
#define VIRTIO_MMIO_STATUS 0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW 0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW 0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW 0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH 0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc
#define VIRTIO_MMIO_CONFIG 0x100

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_VERSION_1 32

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

struct virtq_desc {
  u64 addr;
  u32 len;
  u16 flags;
  u16 next;
};
struct virtq_avail {
  u16 flags;
  u16 idx;
  u16 ring[];
};
struct virtq_used_elem {
  u32 id;
  u32 len;
};
struct virtq_used {
  u16 flags;
  u16 idx;
  struct virtq_used_elem ring[];
};

struct vq {
  u16 index, num;
  volatile struct virtq_desc *desc;
  volatile struct virtq_avail *avail;
  volatile struct virtq_used *used;
  u16 avail_idx; /* next avail index the driver publishes */
  u16 last_used; /* used index the driver has consumed up to */
};

struct vdev {
  usize base;
  u32 irq;
  u32 id; /* DeviceID */
  u32 version;
  u64 features; /* negotiated */
  u64 offered;
};

#define MAX_VDEVS 32
extern struct vdev g_vdevs[MAX_VDEVS];
extern int g_nvdevs;
/* Fills g_vdevs from virtio_mmio.device=SIZE@BASE:IRQ tokens on the command line or, when there
 * is none, from QEMU microvm's fixed slots (0xfeb00000 + n*0x200, n < 24). Only slots with the
 * virtio magic and a nonzero DeviceID are kept. */
void virtio_discover(int verbose);
const char *virtio_name(u32 id);

static inline u32 vr(struct vdev *d, u32 off) { return mmio_r32(d->base + off); }
static inline void vw(struct vdev *d, u32 off, u32 v) { mmio_w32(d->base + off, v); }
static inline u8 vcfg8(struct vdev *d, u32 off) { return mmio_r8(d->base + VIRTIO_MMIO_CONFIG + off); }
u32 vcfg32(struct vdev *d, u32 off);
u64 vcfg64(struct vdev *d, u32 off);

/* reset, ACKNOWLEDGE, DRIVER, features: accept (offered & wanted) | VERSION_1, FEATURES_OK and
 * check. Returns 0 or a static error string. */
const char *virtio_begin(struct vdev *d, u64 wanted);
/* Sets up queue `index` with up to `max` entries (power of two, <= QueueNumMax). */
const char *virtio_queue(struct vdev *d, struct vq *q, u16 index, u16 max);
void virtio_driver_ok(struct vdev *d);
void virtio_reset(struct vdev *d);
void virtio_fail(struct vdev *d);
/* Publishes chain head `head` in the avail ring and notifies. */
void vq_submit(struct vdev *d, struct vq *q, u16 head);
/* 1 and fills id and len if the device has used a buffer since last time. */
int vq_poll(struct vq *q, u32 *id, u32 *len);
/* Polls until a used buffer arrives or `ms` pass: 1 got one, 0 timeout. */
int vq_wait(struct vq *q, u32 *id, u32 *len, u64 ms);

#endif
