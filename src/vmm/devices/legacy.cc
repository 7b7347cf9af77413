#include "vmm/devices/legacy.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace strata::vmm {

namespace {
constexpr uint8_t kIerRda = 0x01, kIerThre = 0x02;
constexpr uint8_t kIirNone = 0x01, kIirThre = 0x02, kIirRda = 0x04;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kLsrDr = 0x01, kLsrThre = 0x20, kLsrTemt = 0x40;
}  // namespace

void Serial::update_interrupt_locked() {
  uint8_t iir = kIirNone;
  if ((s_.ier & kIerRda) && !in_.empty()) {
    iir = kIirRda;
  } else if ((s_.ier & kIerThre) && s_.thr_interrupt) {
    iir = kIirThre;
  }
  bool raise = iir != kIirNone && iir != s_.iir;
  s_.iir = iir;
  if (raise && irq_) irq_->trigger();
}

void Serial::read(uint64_t offset, uint8_t* data, size_t len) {
  std::memset(data, 0, len);
  std::lock_guard<std::mutex> g(mu_);
  uint8_t v = 0;
  switch (offset) {
    case 0:
      if (s_.lcr & kLcrDlab) {
        v = s_.dll;
      } else if (!in_.empty()) {
        v = in_.front();
        in_.pop_front();
        update_interrupt_locked();
      }
      break;
    case 1:
      v = (s_.lcr & kLcrDlab) ? s_.dlh : s_.ier;
      break;
    case 2:
      v = static_cast<uint8_t>(s_.iir | 0xc0);  // FIFOs enabled
      if (s_.iir == kIirThre) {  // reading IIR acknowledges the THR-empty interrupt
        s_.thr_interrupt = false;
        update_interrupt_locked();
      }
      break;
    case 3:
      v = s_.lcr;
      break;
    case 4:
      v = s_.mcr;
      break;
    case 5:
      v = kLsrThre | kLsrTemt | (in_.empty() ? 0 : kLsrDr);
      break;
    case 6:
      if (s_.mcr & kMcrLoop) {  // loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD
        v = static_cast<uint8_t>(((s_.mcr & 0x1) << 5) | ((s_.mcr & 0x2) << 3) | ((s_.mcr & 0x4) << 4) |
                                 ((s_.mcr & 0x8) << 4));
      } else {
        v = 0xb0;  // DCD, DSR, CTS
      }
      break;
    case 7:
      v = s_.scr;
      break;
    default:
      break;
  }
  data[0] = v;
}

void Serial::write(uint64_t offset, const uint8_t* data, size_t len) {
  if (len == 0) return;
  uint8_t v = data[0];
  std::lock_guard<std::mutex> g(mu_);
  switch (offset) {
    case 0:
      if (s_.lcr & kLcrDlab) {
        s_.dll = v;
      } else if (s_.mcr & kMcrLoop) {
        in_.push_back(v);
        update_interrupt_locked();
      } else {
        if (out_fd_ >= 0) {
          while (::write(out_fd_, &v, 1) < 0 && errno == EINTR) {
          }
        }
        s_.thr_interrupt = true;
        update_interrupt_locked();
      }
      break;
    case 1:
      if (s_.lcr & kLcrDlab) {
        s_.dlh = v;
      } else {
        bool thre_enabled = !(s_.ier & kIerThre) && (v & kIerThre);
        s_.ier = v & 0x0f;
        if (thre_enabled) s_.thr_interrupt = true;  // THR is always empty
        update_interrupt_locked();
      }
      break;
    case 2:  // FCR
      if (v & 0x02) in_.clear();
      break;
    case 3:
      s_.lcr = v;
      break;
    case 4:
      s_.mcr = v;
      break;
    case 7:
      s_.scr = v;
      break;
    default:
      break;
  }
}

void Serial::enqueue_input(const uint8_t* data, size_t len) {
  std::lock_guard<std::mutex> g(mu_);
  if (s_.mcr & kMcrLoop) return;
  for (size_t i = 0; i < len && in_.size() < 4096; ++i) in_.push_back(data[i]);
  update_interrupt_locked();
}

Serial::State Serial::state() const {
  std::lock_guard<std::mutex> g(mu_);
  return s_;
}

void Serial::set_state(const State& s) {
  std::lock_guard<std::mutex> g(mu_);
  s_ = s;
}

// --- i8042 ---------------------------------------------------------------------------------

void I8042::read(uint64_t offset, uint8_t* data, size_t len) {
  std::memset(data, 0, len);
  std::lock_guard<std::mutex> g(mu_);
  if (offset == 0) {  // data port
    if (!out_.empty()) {
      data[0] = out_.front();
      out_.pop_front();
      // The next byte raises the keyboard interrupt again, as a controller does when it
      // refills its output buffer.
      if (!out_.empty() && kbd_irq_) kbd_irq_->trigger();
    }
  } else if (offset == 4) {  // status: output buffer full when a byte waits; system flag set
    data[0] = static_cast<uint8_t>((out_.empty() ? 0 : 0x01) | 0x04);
  }
}

Status I8042::press_ctrl_alt_del() {
  {
    std::lock_guard<std::mutex> g(mu_);
    // A real controller holds one byte; a guest that has not drained earlier keys gets no more.
    if (out_.size() > 16) return Error("the guest has not read the keys sent earlier (i8042 buffer full)");
    for (uint8_t b : {0x14, 0x11, 0xe0, 0x71}) out_.push_back(b);
  }
  if (kbd_irq_) kbd_irq_->trigger();
  return ok();
}

void I8042::write(uint64_t offset, const uint8_t* data, size_t len) {
  if (len == 0) return;
  uint8_t v = data[0];
  bool reset = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (offset == 4) {
      switch (v) {
        case 0x20:  // read the configuration byte
          out_.push_back(ctr_);
          break;
        case 0x60:  // write the configuration byte: data follows
        case 0xd1:  // write the output port: data follows
        case 0xd4:  // write to the aux device: data follows
          cmd_ = v;
          break;
        case 0xaa:  // controller self test
          out_.push_back(0x55);
          break;
        case 0xab:  // keyboard interface test
          out_.push_back(0x00);
          break;
        case 0xfe:  // pulse the reset line
          reset = true;
          break;
        default:
          break;
      }
    } else if (offset == 0) {
      if (cmd_ == 0x60) {
        ctr_ = v;
      } else if (cmd_ == 0xd1 && (v & 1) == 0) {
        reset = true;  // output port bit 0 low: system reset
      }
      cmd_ = 0;
    }
  }
  if (reset && on_event_) on_event_(GuestEvent::kReset);
}

// --- ACPI sleep control ----------------------------------------------------------------------

void SleepControl::read(uint64_t, uint8_t* data, size_t len) { std::memset(data, 0, len); }

void SleepControl::write(uint64_t offset, const uint8_t* data, size_t len) {
  if (offset != 0 || len == 0) return;
  uint8_t v = data[0];
  if ((v & 0x20) && ((v >> 2) & 7) == 5 && on_event_) on_event_(GuestEvent::kPowerOff);
}

}  // namespace strata::vmm
