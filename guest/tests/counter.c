/* counter.elf: prints "count N" for N = 1, 2, 3, ... forever, one line per `delay` ms (TSC
 * busy-wait; default 200). It is snapshotted mid-run and restored in a new process, where it
 * must go on from where it was: all state is in guest memory and registers, and a TSC that jumps
 * backwards after a restore only makes one wait longer, never endless.
 *
 * Command line: delay=MS (default 200), max=N (power off after line N; default 0 = forever),
 * tsc_khz=K (skip calibration).
 *
 * Between lines it polls the i8042's output buffer (status port 0x64 bit 0, data port 0x60), as
 * the Firecracker API's SendCtrlAltDel fills it: each byte is printed ("kbd 14"), and the Del
 * key's scancode (0xe0 0x71) prints "ctrl-alt-del" and powers off, as a Linux guest would
 * start its shutdown. */
#include "lib.h"

static volatile u64 g_count; /* in .bss: part of the snapshot like everything else */
static u8 g_prev_key;

static void poll_keyboard(void) {
  /* At most a few bytes per poll; a status of 0xff is no controller at all (QEMU's microvm has
   * none: the port reads as all ones), not a full buffer. */
  for (int i = 0; i < 8; i++) {
    u8 st = inb(0x64);
    if (st == 0xff || !(st & 1)) return;
    u8 b = inb(0x60);
    printf("kbd %x\n", b);
    if (g_prev_key == 0xe0 && b == 0x71) {
      printf("ctrl-alt-del\n");
      power_off();
    }
    g_prev_key = b;
  }
}

void guest_main(u32 start_info) {
  boot_init(start_info);
  time_init(1);
  u64 delay = cmdline_u64("delay", 200);
  u64 max = cmdline_u64("max", 0);
  printf("counter: delay %lu ms, max %lu (0 = forever)\n", delay, max);
  for (;;) {
    g_count = g_count + 1;
    printf("count %lu\n", g_count);
    if (max && g_count >= max) {
      printf("COUNTER DONE\n");
      power_off();
    }
    poll_keyboard();
    delay_ms(delay);
  }
}
