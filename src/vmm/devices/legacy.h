// The PC devices a micro-VM needs on port I/O: the 8250 UART at 0x3f8 (the console), the i8042
// controller at 0x60/0x64 (only so that a guest's reset request through it ends the VM, as
// Firecracker does), and the ACPI sleep control register at 0x600 (a write of SLP_TYP=5 with
// SLP_EN powers the VM off; the project's test guests and an ACPI-aware kernel use it).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "base/error.h"
#include "vmm/devices/bus.h"
#include "vmm/devices/irq.h"

namespace strata::vmm {

enum class GuestEvent { kPowerOff, kReset };
using GuestEventFn = std::function<void(GuestEvent)>;

constexpr uint16_t kSerialPort = 0x3f8;
constexpr uint32_t kSerialIrq = 4;
constexpr uint32_t kKeyboardIrq = 1;
constexpr uint16_t kI8042Port = 0x60;  // 0x60 data .. 0x64 status/command
constexpr uint16_t kSleepControlPort = 0x600;

class Serial : public BusDevice {
 public:
  // Output goes to out_fd (-1: discarded); irq may be null (no interrupts).
  Serial(int out_fd, std::shared_ptr<IrqLine> irq) : out_fd_(out_fd), irq_(std::move(irq)) {}
  void read(uint64_t offset, uint8_t* data, size_t len) override;
  void write(uint64_t offset, const uint8_t* data, size_t len) override;
  // Bytes typed on the console (from the event loop thread).
  void enqueue_input(const uint8_t* data, size_t len);

  struct State {
    uint8_t ier = 0, iir = 1, lcr = 0x3, mcr = 0x8, scr = 0, dll = 0x0c, dlh = 0;
    bool thr_interrupt = false;
  };
  State state() const;
  void set_state(const State& s);

 private:
  void update_interrupt_locked();
  mutable std::mutex mu_;
  State s_;
  std::deque<uint8_t> in_;
  int out_fd_;
  std::shared_ptr<IrqLine> irq_;
};

// The keyboard controller: its reset line (the guest's reboot=k) ends the VM, and the keyboard
// can press Ctrl+Alt+Del (the API's SendCtrlAltDel, as Firecracker: set-2 scancodes 0x14, 0x11,
// 0xe0 0x71 in the output buffer, IRQ 1 for each key) so that a Linux guest shuts down.
class I8042 : public BusDevice {
 public:
  // kbd_irq may be null (no keyboard interrupt).
  I8042(GuestEventFn on_event, std::shared_ptr<IrqLine> kbd_irq)
      : kbd_irq_(std::move(kbd_irq)), on_event_(std::move(on_event)) {}
  void read(uint64_t offset, uint8_t* data, size_t len) override;
  void write(uint64_t offset, const uint8_t* data, size_t len) override;
  // Fails when the guest has not read earlier keys yet (the buffer is full).
  Status press_ctrl_alt_del();

 private:
  std::mutex mu_;
  std::shared_ptr<IrqLine> kbd_irq_;
  uint8_t ctr_ = 0x47;     // controller configuration byte
  uint8_t cmd_ = 0;        // a command waiting for its data byte
  std::deque<uint8_t> out_;
  GuestEventFn on_event_;
};

class SleepControl : public BusDevice {
 public:
  explicit SleepControl(GuestEventFn on_event) : on_event_(std::move(on_event)) {}
  void read(uint64_t, uint8_t* data, size_t len) override;
  void write(uint64_t offset, const uint8_t* data, size_t len) override;

 private:
  GuestEventFn on_event_;
};

}  // namespace strata::vmm
