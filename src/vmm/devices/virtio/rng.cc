#include "vmm/devices/virtio/rng.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace strata::vmm::virtio {

void RngDevice::read_config(uint64_t, uint8_t* data, size_t len) const { std::memset(data, 0, len); }

Status RngDevice::activate(const ActivateContext& ctx) {
  queue_ = &ctx.queues[0];
  return ok();
}

Status RngDevice::process(size_t) {
  if (queue_ == nullptr) return ok();
  for (;;) {
    ASSIGN_OR_RETURN(bool got, queue_->pop(chain_));
    if (!got) return ok();
    uint64_t want = std::min(chain_.writable_bytes(), kMaxRequestBytes);
    uint64_t done = 0;
    // Straight into the guest's buffers (checked by pop()); the writable ones are contiguous
    // at the end of buffers().
    for (const Buffer& b : chain_.buffers()) {
      if (!b.writable) continue;
      uint64_t off = 0;
      while (off < b.len && done < want) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(b.len - off, want - done));
        ssize_t got_bytes = ::getrandom(b.host + off, n, 0);
        if (got_bytes < 0) {
          if (errno == EINTR) continue;
          return Error::sys("getrandom for " + name());
        }
        off += static_cast<uint64_t>(got_bytes);
        done += static_cast<uint64_t>(got_bytes);
      }
      if (done >= want) break;
    }
    TRY(queue_->add_used(chain_.head(), static_cast<uint32_t>(done)));
  }
}

}  // namespace strata::vmm::virtio
