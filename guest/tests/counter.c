/* counter.elf: prints "count N" for N = 1, 2, 3, ... forever, one line per `delay` ms (TSC
 * busy-wait; default 200). It is snapshotted mid-run and restored in a new process, where it
 * must go on from where it was: all state is in guest memory and registers, and a TSC that jumps
 * backwards after a restore only makes one wait longer, never endless.
 *
 * Command line: delay=MS (default 200), max=N (power off after line N; default 0 = forever),
 * tsc_khz=K (skip calibration). */
#include "lib.h"

static volatile u64 g_count; /* in .bss: part of the snapshot like everything else */

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
    delay_ms(delay);
  }
}
