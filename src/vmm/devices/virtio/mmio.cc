#include "vmm/devices/virtio/mmio.h"

#include <cstring>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/log.h"
#include "vmm/devices/irq.h"
#include "vmm/guest_memory.h"

namespace strata::vmm::virtio {
namespace {

void set_low(uint64_t& v, uint32_t low) { v = (v & ~0xffffffffull) | low; }
void set_high(uint64_t& v, uint32_t high) { v = (v & 0xffffffffull) | (uint64_t{high} << 32); }

}  // namespace

MmioTransport::MmioTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory& mem, std::shared_ptr<IrqLine> irq,
                             EventLoop* loop)
    : device_(std::move(device)), mem_(mem), irq_(std::move(irq)), loop_(loop), name_(device_->name()) {
  for (size_t i = 0; i < device_->num_queues(); ++i) queues_.emplace_back(device_->max_queue_size(i));
  device_->set_host(this);
}

MmioTransport::~MmioTransport() {
  std::lock_guard<std::mutex> g(mu_);
  if (active_) device_->reset();
  device_->set_host(nullptr);
}

uint64_t MmioTransport::offered_features() const { return device_->features() | feature(kFVersion1); }

Queue* MmioTransport::selected_queue() { return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr; }

// ---- registers ----

void MmioTransport::read(uint64_t offset, uint8_t* data, size_t len) {
  std::lock_guard<std::mutex> g(mu_);
  if (offset >= mmio::kConfig) {
    device_->read_config(offset - mmio::kConfig, data, len);
    return;
  }
  // 4.2.2.2: control registers are read 32 bits wide and aligned; anything else reads as 0.
  if (len != 4 || offset % 4 != 0) {
    std::memset(data, 0, len);
    return;
  }
  uint32_t v = read_reg(offset);
  std::memcpy(data, &v, 4);
}

void MmioTransport::write(uint64_t offset, const uint8_t* data, size_t len) {
  std::lock_guard<std::mutex> g(mu_);
  if (offset >= mmio::kConfig) {
    device_->write_config(offset - mmio::kConfig, data, len);
    return;
  }
  if (len != 4 || offset % 4 != 0) return;
  uint32_t v;
  std::memcpy(&v, data, 4);
  write_reg(offset, v);
}

uint32_t MmioTransport::read_reg(uint64_t offset) {
  const Queue* q = selected_queue();
  switch (offset) {
    case mmio::kMagicValue:
      return mmio::kMagic;
    case mmio::kVersion:
      return 2;
    case mmio::kDeviceId:
      return static_cast<uint32_t>(device_->type());
    case mmio::kVendorId:
      return mmio::kVendor;
    case mmio::kDeviceFeatures:
      if (device_features_sel_ > 1) return 0;
      return static_cast<uint32_t>(offered_features() >> (32 * device_features_sel_));
    case mmio::kQueueNumMax:
      return q != nullptr ? q->max_size() : 0;  // 0: no such queue
    case mmio::kQueueNum:
      return q != nullptr ? q->size : 0;
    case mmio::kQueueReady:
      return q != nullptr && q->ready ? 1 : 0;
    case mmio::kInterruptStatus:
      return interrupt_status_;
    case mmio::kStatus:
      return status_;
    case mmio::kQueueDescLow:
      return q != nullptr ? static_cast<uint32_t>(q->desc_addr) : 0;
    case mmio::kQueueDescHigh:
      return q != nullptr ? static_cast<uint32_t>(q->desc_addr >> 32) : 0;
    case mmio::kQueueDriverLow:
      return q != nullptr ? static_cast<uint32_t>(q->avail_addr) : 0;
    case mmio::kQueueDriverHigh:
      return q != nullptr ? static_cast<uint32_t>(q->avail_addr >> 32) : 0;
    case mmio::kQueueDeviceLow:
      return q != nullptr ? static_cast<uint32_t>(q->used_addr) : 0;
    case mmio::kQueueDeviceHigh:
      return q != nullptr ? static_cast<uint32_t>(q->used_addr >> 32) : 0;
    case mmio::kShmLenLow:
    case mmio::kShmLenHigh:
    case mmio::kShmBaseLow:
    case mmio::kShmBaseHigh:
      return 0xffffffff;  // 4.2.2: no shared memory regions (length -1)
    case mmio::kConfigGeneration:
      return config_generation_;
    default:
      return 0;
  }
}

void MmioTransport::write_reg(uint64_t offset, uint32_t value) {
  // Queue configuration may change only between FEATURES_OK and DRIVER_OK, on a queue that
  // is not ready (4.2.2.3); other writes are ignored.
  Queue* q = selected_queue();
  bool queue_writable = q != nullptr && !q->ready && (status_ & kStatusFeaturesOk) && !(status_ & kStatusDriverOk);
  switch (offset) {
    case mmio::kDeviceFeaturesSel:
      device_features_sel_ = value;
      break;
    case mmio::kDriverFeatures:
      if ((status_ & kStatusDriver) && !(status_ & kStatusFeaturesOk) && driver_features_sel_ < 2) {
        if (driver_features_sel_ == 0)
          set_low(driver_features_, value);
        else
          set_high(driver_features_, value);
      }
      break;
    case mmio::kDriverFeaturesSel:
      driver_features_sel_ = value;
      break;
    case mmio::kQueueSel:
      queue_sel_ = value;
      break;
    case mmio::kQueueNum:
      if (queue_writable) q->size = static_cast<uint16_t>(value > 0xffff ? 0 : value);  // checked at DRIVER_OK
      break;
    case mmio::kQueueReady:
      if (q != nullptr && (status_ & kStatusFeaturesOk) && !(status_ & kStatusDriverOk)) q->ready = value == 1;
      break;
    case mmio::kQueueNotify:
      notify_locked(value);
      break;
    case mmio::kInterruptAck:
      interrupt_status_ &= ~value;
      break;
    case mmio::kStatus:
      set_status(value);
      break;
    case mmio::kQueueDescLow:
      if (queue_writable) set_low(q->desc_addr, value);
      break;
    case mmio::kQueueDescHigh:
      if (queue_writable) set_high(q->desc_addr, value);
      break;
    case mmio::kQueueDriverLow:
      if (queue_writable) set_low(q->avail_addr, value);
      break;
    case mmio::kQueueDriverHigh:
      if (queue_writable) set_high(q->avail_addr, value);
      break;
    case mmio::kQueueDeviceLow:
      if (queue_writable) set_low(q->used_addr, value);
      break;
    case mmio::kQueueDeviceHigh:
      if (queue_writable) set_high(q->used_addr, value);
      break;
    default:
      break;  // read-only or unknown registers
  }
}

// ---- status and lifecycle (2.1, 3.1.1, 4.2.3.1) ----

void MmioTransport::set_status(uint32_t value) {
  if (value == 0) {
    reset();
    return;
  }
  // DEVICE_NEEDS_RESET is ours: the driver writing back what it read keeps it, and cannot set
  // it. Bits once set are cleared only by a reset.
  uint32_t ours = status_ & kStatusDeviceNeedsReset;
  value &= ~kStatusDeviceNeedsReset;
  uint32_t old = status_ & ~kStatusDeviceNeedsReset;
  if ((value & old) != old) return;
  uint32_t added = value & ~old;
  if (added & kStatusFeaturesOk) {
    uint64_t offered = offered_features();
    bool accept = (old & kStatusDriver) && (driver_features_ & feature(kFVersion1)) && (driver_features_ & ~offered) == 0;
    if (!accept) {
      value &= ~kStatusFeaturesOk;  // the driver reads Status back and gives up (3.1.1 step 6)
      ++refusals_;
      if ((refusals_ & (refusals_ - 1)) == 0)  // rate-limited like failures
        log::get("vmm")->warn("{}: refused the driver's features {:#x} (offered {:#x}, VERSION_1 required)", name_,
                              driver_features_, offered);
    }
  }
  if ((added & kStatusDriverOk) && !(value & kStatusFeaturesOk)) value &= ~kStatusDriverOk;
  status_ = value | ours;
  if ((value & kStatusDriverOk) && (added & kStatusDriverOk) && !failed_) activate();
}

void MmioTransport::activate() {
  for (size_t i = 0; i < queues_.size(); ++i) {
    auto st = queues_[i].activate(mem_, driver_features_);
    if (!st.ok()) {
      fail(std::move(st).error().context("activate queue " + std::to_string(i)));
      return;
    }
  }
  auto st = device_->activate(ActivateContext{mem_, std::span<Queue>(queues_), driver_features_, loop_});
  if (!st.ok()) {
    fail(std::move(st).error().context("activate"));
    return;
  }
  active_ = true;
  log::get("vmm")->debug("{}: activated, features {:#x}", name_, driver_features_);
}

void MmioTransport::reset() {
  if (active_) device_->reset();
  active_ = false;
  failed_ = false;
  for (auto& q : queues_) q.reset();
  device_features_sel_ = driver_features_sel_ = 0;
  driver_features_ = 0;
  queue_sel_ = 0;
  status_ = 0;
  interrupt_status_ = 0;
}

void MmioTransport::fail(const Error& e) {
  if (failed_) return;
  failed_ = true;
  if (active_) device_->reset();
  active_ = false;
  status_ |= kStatusDeviceNeedsReset;
  ++failures_;
  // One line per failure, but a guest failing and resetting in a loop gets 1, 2, 4, 8, ... lines.
  if ((failures_ & (failures_ - 1)) == 0)
    log::get("vmm")->error("{}: device needs reset (failure {}): {}", name_, failures_, e.to_string());
  raise(mmio::kInterruptConfigChange);  // 2.1.2: DEVICE_NEEDS_RESET comes with a config-change interrupt
}

void MmioTransport::raise(uint32_t bits) {
  interrupt_status_ |= bits;
  irq_->trigger();
}

void MmioTransport::signal_used() {
  bool any = false;
  for (auto& q : queues_) any |= q.needs_interrupt();  // every queue: each consumes its count
  if (any) raise(mmio::kInterruptUsedBuffer);
}

// ---- notifications and device work ----

void MmioTransport::notify(uint32_t queue) {
  std::lock_guard<std::mutex> g(mu_);
  notify_locked(queue);
}

void MmioTransport::notify_locked(uint32_t queue) {
  if (!active_ || failed_ || queue >= queues_.size() || !queues_[queue].active()) return;
  auto st = device_->process(queue);
  if (!st.ok()) {
    // What was completed before the error is still the driver's.
    signal_used();
    fail(std::move(st).error().context("queue " + std::to_string(queue)));
    return;
  }
  signal_used();
}

void MmioTransport::run_active(const std::function<Status()>& fn) {
  std::lock_guard<std::mutex> g(mu_);
  if (!active_ || failed_) return;
  auto st = fn();
  signal_used();
  if (!st.ok()) fail(st.error());
}

Status MmioTransport::run_locked(const std::function<Status()>& fn) {
  std::lock_guard<std::mutex> g(mu_);
  return fn();
}

void MmioTransport::config_changed() {
  ++config_generation_;
  if (status_ & kStatusDriverOk) raise(mmio::kInterruptConfigChange);
}

uint32_t MmioTransport::status() {
  std::lock_guard<std::mutex> g(mu_);
  return status_;
}

uint32_t MmioTransport::interrupt_status() {
  std::lock_guard<std::mutex> g(mu_);
  return interrupt_status_;
}

bool MmioTransport::failed() {
  std::lock_guard<std::mutex> g(mu_);
  return failed_;
}

// ---- snapshots ----

nlohmann::json MmioTransport::save_state() {
  std::lock_guard<std::mutex> g(mu_);
  nlohmann::json queues = nlohmann::json::array();
  for (const auto& q : queues_) queues.push_back(q.save_state());
  return {{"device_type", static_cast<uint32_t>(device_->type())},
          {"device_features_sel", device_features_sel_},
          {"driver_features_sel", driver_features_sel_},
          {"driver_features", driver_features_},
          {"queue_sel", queue_sel_},
          {"status", status_},
          {"interrupt_status", interrupt_status_},
          {"config_generation", config_generation_},
          {"failed", failed_},
          {"queues", std::move(queues)},
          {"device", device_->save_state()}};
}

Status MmioTransport::restore_state(const nlohmann::json& j) {
  std::lock_guard<std::mutex> g(mu_);
  reset();
  auto load = [&]() -> Status {
    if (j.at("device_type").get<uint32_t>() != static_cast<uint32_t>(device_->type()))
      return Error("snapshot state is for device type " + std::to_string(j.at("device_type").get<uint32_t>()));
    const auto& qs = j.at("queues");
    if (!qs.is_array() || qs.size() != queues_.size())
      return Error("snapshot state has " + std::to_string(qs.size()) + " queues, the device " +
                   std::to_string(queues_.size()));
    for (size_t i = 0; i < queues_.size(); ++i) {
      TRY_CTX(queues_[i].restore_state(qs[i]), "queue " + std::to_string(i));
      if (queues_[i].size > queues_[i].max_size())
        return Error("snapshot queue " + std::to_string(i) + " has size " + std::to_string(queues_[i].size));
    }
    device_features_sel_ = j.at("device_features_sel").get<uint32_t>();
    driver_features_sel_ = j.at("driver_features_sel").get<uint32_t>();
    driver_features_ = j.at("driver_features").get<uint64_t>();
    queue_sel_ = j.at("queue_sel").get<uint32_t>();
    status_ = j.at("status").get<uint32_t>();
    interrupt_status_ = j.at("interrupt_status").get<uint32_t>();
    config_generation_ = j.at("config_generation").get<uint32_t>();
    failed_ = j.at("failed").get<bool>();
    return device_->restore_state(j.at("device"));
  };
  Status st;
  try {
    st = load();
  } catch (const nlohmann::json::exception& e) {
    st = Error(std::string("snapshot state: ") + e.what());
  }
  if (!st.ok()) {
    reset();
    return std::move(st).error().context(name_);
  }
  // A running device resumes at the saved ring positions; queues are checked again against the
  // restored memory like at DRIVER_OK.
  if ((status_ & kStatusDriverOk) && !failed_) {
    for (size_t i = 0; i < queues_.size(); ++i) {
      auto qs = queues_[i].activate(mem_, driver_features_);
      if (!qs.ok()) {
        reset();
        return std::move(qs).error().context(name_ + ": restore queue " + std::to_string(i));
      }
    }
    auto ds = device_->activate(ActivateContext{mem_, std::span<Queue>(queues_), driver_features_, loop_});
    if (!ds.ok()) {
      reset();
      return std::move(ds).error().context(name_ + ": restore");
    }
    active_ = true;
  }
  return ok();
}

}  // namespace strata::vmm::virtio
