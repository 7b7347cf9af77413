#include "vmm/machine.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "vmm/boot/mptable.h"
#include "vmm/kvm/cpu_setup.h"

namespace strata::vmm {

namespace {

// The signal that kicks a vCPU out of KVM_RUN; its handler does nothing.
int kick_signal() { return SIGRTMIN + 1; }
void on_kick(int) {}

std::string hexbytes(const uint8_t* p, size_t n) {
  std::string out;
  char b[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%s%02x", i ? " " : "", p[i]);
    out += b;
  }
  return out;
}

}  // namespace

int ExitReport::exit_code() const {
  switch (kind) {
    case kPowerOff:
    case kReset:
    case kStopped:
      return 0;
    case kTripleFault:
      return 3;
    case kInternalError:
      return 4;
    case kFailEntry:
      return 5;
    case kHostError:
      return 1;
  }
  return 1;
}

const char* ExitReport::name() const {
  switch (kind) {
    case kPowerOff:
      return "guest powered off";
    case kReset:
      return "guest requested a reset (reboot)";
    case kStopped:
      return "stopped";
    case kTripleFault:
      return "guest triple fault (KVM_EXIT_SHUTDOWN)";
    case kInternalError:
      return "KVM internal error";
    case kFailEntry:
      return "KVM failed to enter the guest";
    case kHostError:
      return "host error";
  }
  return "?";
}

Result<PreparedVm> prepare_vm() {
  ASSIGN_OR_RETURN(auto kvm, Kvm::open());
  ASSIGN_OR_RETURN(auto vm, Vm::create(kvm));
  ASSIGN_OR_RETURN(auto cpuid, kvm.supported_cpuid());
  return PreparedVm{std::move(kvm), std::move(vm), std::move(cpuid)};
}

Result<std::unique_ptr<Machine>> Machine::build(const MachineSpec& spec, GuestMemory mem,
                                                std::optional<PreparedVm> prepared, For purpose) {
  std::unique_ptr<Machine> m(new Machine);
  m->spec_ = spec;
  if (!prepared) {
    ASSIGN_OR_RETURN(auto fresh, prepare_vm());
    prepared.emplace(std::move(fresh));
  }
  m->kvm_ = std::move(prepared->kvm);
  m->vm_ = std::move(prepared->vm);
  CpuidEntries supported = std::move(prepared->supported_cpuid);
  m->mem_ = std::move(mem);
  TRY(m->vm_.set_memory(m->mem_));
  ASSIGN_OR_RETURN(m->loop_, EventLoop::create());

  // Legacy devices on port I/O.
  Machine* self = m.get();
  auto on_event = [self](GuestEvent e) {
    self->finish({e == GuestEvent::kPowerOff ? ExitReport::kPowerOff : ExitReport::kReset, ""});
  };
  UniqueFd serial_efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!serial_efd) return Error::sys("eventfd for the serial interrupt");
  TRY(m->vm_.add_irqfd(serial_efd.get(), kSerialIrq));
  m->serial_ = std::make_shared<Serial>(spec.console_out, std::make_shared<EventFdIrq>(std::move(serial_efd), kSerialIrq));
  TRY(m->pio_.insert(kSerialPort, 8, m->serial_, "serial"));
  UniqueFd kbd_efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!kbd_efd) return Error::sys("eventfd for the keyboard interrupt");
  TRY(m->vm_.add_irqfd(kbd_efd.get(), kKeyboardIrq));
  m->i8042_ = std::make_shared<I8042>(on_event, std::make_shared<EventFdIrq>(std::move(kbd_efd), kKeyboardIrq));
  TRY(m->pio_.insert(kI8042Port, 5, m->i8042_, "i8042"));
  TRY(m->pio_.insert(kSleepControlPort, 1, std::make_shared<SleepControl>(on_event), "acpi-sleep-control"));
  if (spec.console_in >= 0) {
    auto serial = m->serial_;
    int in = spec.console_in;
    // stdin that epoll cannot watch (/dev/null, a regular file) is no console input.
    Status added = m->loop_->add(in, [serial, in, self](uint32_t) {
      uint8_t buf[256];
      ssize_t n = ::read(in, buf, sizeof buf);
      if (n > 0) {
        serial->enqueue_input(buf, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        self->loop_->remove(in);  // console input ended
      }
    });
    if (!added && added.error().err() != EPERM) return std::move(added).error().context("watch the console input");
  }

  m->cmdline_ = spec.kernel.cmdline;
  if (spec.devices.size() > kMaxVirtioDevices) {
    return Error(std::to_string(spec.devices.size()) + " virtio devices; at most " + std::to_string(kMaxVirtioDevices));
  }
  for (size_t i = 0; i < spec.devices.size(); ++i) {
    ASSIGN_OR_RETURN(auto dev, make_device(spec.devices[i]));
    TRY(m->add_virtio(std::move(dev), static_cast<uint32_t>(i)));
  }

  for (uint32_t i = 0; i < spec.vcpus; ++i) {
    ASSIGN_OR_RETURN(auto v, Vcpu::create(m->kvm_, m->vm_, i));
    TRY(v->set_cpuid(guest_cpuid(supported, i, spec.vcpus)));
    if (purpose == For::kRestore) {
      m->vcpus_.push_back(std::move(v));
      continue;
    }
    // One at a time and best effort: a host may refuse some (PVM refuses the SYSENTER MSRs)
    // and the guest programs them itself anyway.
    for (const auto& msr : boot_msrs()) (void)v->set_msrs({msr});
    TRY(v->set_fpu(boot_fpu()));
    TRY(v->setup_lapic());
    m->vcpus_.push_back(std::move(v));
  }
  return m;
}

Result<std::unique_ptr<Machine>> Machine::create(const MachineSpec& spec, std::optional<PreparedVm> prepared) {
  if (spec.vcpus == 0 || spec.vcpus > 32) return Error("vcpu count " + std::to_string(spec.vcpus) + " is outside 1..32");
  if (spec.mem_mib == 0) return Error("memory size is 0 MiB");
  ASSIGN_OR_RETURN(auto mem, GuestMemory::create(spec.mem_mib << 20, spec.backing));
  ASSIGN_OR_RETURN(auto m, build(spec, std::move(mem), std::move(prepared), For::kBoot));
  KernelImage k = spec.kernel;
  k.cmdline = m->cmdline_;
  ASSIGN_OR_RETURN(m->boot_, load_kernel(m->mem_, k));
  TRY(write_mptable(m->mem_, spec.vcpus));
  Vcpu& v = *m->vcpus_[0];
  kvm_regs regs{};
  kvm_sregs sregs{};
  TRY(v.get_sregs(&sregs));
  TRY(boot_registers(m->mem_, m->boot_, &regs, &sregs));
  TRY(v.set_sregs(sregs));
  TRY(v.set_regs(regs));
  return m;
}

Status Machine::add_virtio(std::shared_ptr<virtio::VirtioDevice> dev, uint32_t slot) {
  uint64_t base = kMmioGapStart + slot * virtio::MmioTransport::kWindowSize;
  uint32_t gsi = kFirstVirtioGsi + slot;
  UniqueFd irq_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!irq_fd) return Error::sys("eventfd for the interrupt of " + dev->name());
  TRY_CTX(vm_.add_irqfd(irq_fd.get(), gsi), dev->name());
  auto t = std::make_shared<virtio::MmioTransport>(dev, mem_, std::make_shared<EventFdIrq>(std::move(irq_fd), gsi),
                                                   loop_.get());
  TRY(mmio_.insert(base, virtio::MmioTransport::kWindowSize, t, t->name()));
  // Queue notifications reach the event loop through ioeventfds: the vCPU does not stop.
  for (uint32_t q = 0; q < t->num_queues(); ++q) {
    UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!efd) return Error::sys("eventfd for a queue of " + dev->name());
    TRY_CTX(vm_.add_ioeventfd(efd.get(), base + virtio::MmioTransport::kNotifyOffset, 4, false, q), dev->name());
    int fd = efd.get();
    virtio::MmioTransport* tp = t.get();
    TRY(loop_->add(fd, [fd, tp, q](uint32_t) {
      uint64_t v;
      while (::read(fd, &v, sizeof v) > 0) {
      }
      tp->notify(q);
    }));
    notify_fds_.push_back(std::move(efd));
  }
  char entry[80];
  std::snprintf(entry, sizeof entry, " virtio_mmio.device=4K@0x%llx:%u", static_cast<unsigned long long>(base), gsi);
  cmdline_ += entry;
  transports_.push_back(std::move(t));
  return ok();
}

Machine::~Machine() {
  stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

Status Machine::start(bool paused) {
  paused_ = paused;
  struct sigaction sa {};
  sa.sa_handler = on_kick;
  sigemptyset(&sa.sa_mask);
  if (::sigaction(kick_signal(), &sa, nullptr) != 0) return Error::sys("install the vCPU kick handler");
  for (auto& v : vcpus_) {
    Vcpu* p = v.get();
    threads_.emplace_back([this, p] { vcpu_loop(p); });
    char name[16];
    std::snprintf(name, sizeof name, "vcpu%u", p->index());
    pthread_setname_np(threads_.back().native_handle(), name);
  }
  return ok();
}

void Machine::finish(ExitReport r) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (finished_) return;
    finished_ = true;
    report_ = std::move(r);
  }
  stopping_ = true;
  cv_.notify_all();
  kick_all();
  if (loop_) loop_->stop();  // null when the machine failed before its loop existed
}

void Machine::stop() { finish({ExitReport::kStopped, ""}); }

void Machine::kick_all() {
  for (size_t i = 0; i < threads_.size() && i < vcpus_.size(); ++i) {
    vcpus_[i]->run_struct()->immediate_exit = 1;
    if (threads_[i].joinable()) pthread_kill(threads_[i].native_handle(), kick_signal());
  }
}

Status Machine::pause() {
  std::unique_lock<std::mutex> l(mu_);
  if (paused_) return ok();
  paused_ = true;
  l.unlock();
  kick_all();
  l.lock();
  cv_.wait(l, [&] { return parked_ == vcpus_.size() || finished_; });
  return ok();
}

Status Machine::resume() {
  std::lock_guard<std::mutex> g(mu_);
  paused_ = false;
  cv_.notify_all();
  return ok();
}

void Machine::vcpu_loop(Vcpu* v) {
  // Only this thread takes the kick signal (the others block it by default below).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kick_signal());
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  for (;;) {
    if (stopping_) return;
    if (paused_) {
      std::unique_lock<std::mutex> l(mu_);
      ++parked_;
      cv_.notify_all();
      cv_.wait(l, [&] { return !paused_ || stopping_.load(); });
      --parked_;
      continue;
    }
    Status st = v->run();
    if (!st) {
      finish({ExitReport::kHostError, st.error().to_string()});
      return;
    }
    if (!handle_exit(v)) return;
  }
}

bool Machine::handle_exit(Vcpu* v) {
  kvm_run* run = v->run_struct();
  static const bool trace = std::getenv("STRATA_VMM_TRACE_EXITS") != nullptr;
  if (trace) {
    if (run->exit_reason == KVM_EXIT_IO) {
      std::fprintf(stderr, "vcpu%u exit io %s port 0x%x size %u count %u\n", v->index(),
                   run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", run->io.port, run->io.size, run->io.count);
    } else if (run->exit_reason == KVM_EXIT_MMIO) {
      std::fprintf(stderr, "vcpu%u exit mmio %s 0x%llx len %u\n", v->index(), run->mmio.is_write ? "write" : "read",
                   static_cast<unsigned long long>(run->mmio.phys_addr), run->mmio.len);
    } else {
      std::fprintf(stderr, "vcpu%u exit %u\n", v->index(), run->exit_reason);
    }
  }
  auto vcpu_name = "vCPU " + std::to_string(v->index());
  switch (run->exit_reason) {
    case KVM_EXIT_INTR:
      run->immediate_exit = 0;
      return true;
    case KVM_EXIT_IO: {
      auto* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
      for (uint32_t i = 0; i < run->io.count; ++i) {
        uint8_t* d = data + static_cast<size_t>(i) * run->io.size;
        if (run->io.direction == KVM_EXIT_IO_OUT) {
          pio_.write(run->io.port, d, run->io.size);
        } else {
          pio_.read(run->io.port, d, run->io.size);
        }
      }
      return true;
    }
    case KVM_EXIT_MMIO:
      if (run->mmio.is_write) {
        mmio_.write(run->mmio.phys_addr, run->mmio.data, run->mmio.len);
      } else {
        mmio_.read(run->mmio.phys_addr, run->mmio.data, run->mmio.len);
      }
      return true;
    case KVM_EXIT_HLT:
      finish({ExitReport::kPowerOff, vcpu_name + " halted with interrupts off"});
      return false;
    case KVM_EXIT_SHUTDOWN:
      finish({ExitReport::kTripleFault, vcpu_name + ": " + format_registers(v->registers())});
      return false;
    case KVM_EXIT_SYSTEM_EVENT:
      finish({run->system_event.type == KVM_SYSTEM_EVENT_RESET ? ExitReport::kReset : ExitReport::kPowerOff,
              vcpu_name + ": system event " + std::to_string(run->system_event.type)});
      return false;
    case KVM_EXIT_FAIL_ENTRY: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "hardware entry failure reason 0x%llx: ",
                    static_cast<unsigned long long>(run->fail_entry.hardware_entry_failure_reason));
      finish({ExitReport::kFailEntry, vcpu_name + ": " + buf + format_registers(v->registers())});
      return false;
    }
    case KVM_EXIT_INTERNAL_ERROR: {
      std::string what = "suberror " + std::to_string(run->internal.suberror);
      if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION) {
        what += " (instruction emulation failed";
        if (run->internal.ndata >= 2 && (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
          size_t n = std::min<size_t>(run->emulation_failure.insn_size, 15);
          what += "; instruction bytes " + hexbytes(run->emulation_failure.insn_bytes, n);
        }
        what += ")";
      } else if (run->internal.suberror == KVM_INTERNAL_ERROR_SIMUL_EX) {
        what += " (exception while delivering an exception)";
      } else if (run->internal.suberror == KVM_INTERNAL_ERROR_DELIVERY_EV) {
        what += " (event delivery failed)";
      }
      finish({ExitReport::kInternalError, vcpu_name + ": " + what + ": " + format_registers(v->registers())});
      return false;
    }
    default:
      finish({ExitReport::kInternalError, vcpu_name + ": unexpected KVM exit reason " + std::to_string(run->exit_reason) +
                                               ": " + format_registers(v->registers())});
      return false;
  }
}

ExitReport Machine::run() {
  // The kick signal is blocked on every thread but the vCPUs' own.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kick_signal());
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  Status st = loop_->run();
  if (!st) finish({ExitReport::kHostError, st.error().to_string()});
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  std::lock_guard<std::mutex> g(mu_);
  return report_;
}

}  // namespace strata::vmm
