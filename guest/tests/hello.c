/* hello.elf: the smallest strata test guest. Prints one line and powers off; the boot-time
 * benchmark runs it (no timer calibration, no device probing).
 * Serial: "hello from strata test guest" then power off (port 0x600 = 0x34, then QEMU's
 * isa-debug-exit at 0xf4). */
#include "lib.h"

void guest_main(u32 start_info) {
  (void)start_info;
  puts_serial("hello from strata test guest\n");
  power_off();
}
