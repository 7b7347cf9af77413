// The virtio-vsock wire format (virtio 1.2 section 5.10.6): the packet header every packet on
// the RX and TX queues starts with, its operations and flags, and the event-queue event.
#pragma once

#include <cstdint>
#include <type_traits>

namespace strata::vmm::virtio::vsock {

// A le64 at 4-byte alignment: the header's CIDs sit at 4-byte offsets of a 44-byte struct, so
// a plain uint64_t would pad it to 48 (and a packed struct cannot bind its fields to references).
struct Le64 {
  uint32_t lo = 0;
  uint32_t hi = 0;
  Le64() = default;
  Le64(uint64_t v) : lo(static_cast<uint32_t>(v)), hi(static_cast<uint32_t>(v >> 32)) {}  // NOLINT
  operator uint64_t() const { return (uint64_t{hi} << 32) | lo; }                          // NOLINT
};

// struct virtio_vsock_hdr, little-endian like the x86 host.
struct Header {
  Le64 src_cid;
  Le64 dst_cid;
  uint32_t src_port;
  uint32_t dst_port;
  uint32_t len;        // payload bytes after the header
  uint16_t type;
  uint16_t op;
  uint32_t flags;
  uint32_t buf_alloc;  // the sender's receive buffer for this connection
  uint32_t fwd_cnt;    // bytes the sender has consumed from it
};
static_assert(sizeof(Header) == 44 && alignof(Header) == 4);
static_assert(std::is_trivially_copyable_v<Header>);

constexpr uint64_t kHostCid = 2;
constexpr uint16_t kTypeStream = 1;

constexpr uint16_t kOpRequest = 1;
constexpr uint16_t kOpResponse = 2;
constexpr uint16_t kOpRst = 3;
constexpr uint16_t kOpShutdown = 4;
constexpr uint16_t kOpRw = 5;
constexpr uint16_t kOpCreditUpdate = 6;
constexpr uint16_t kOpCreditRequest = 7;

// OP_SHUTDOWN flags: the sender will receive / send no more.
constexpr uint32_t kShutdownRcv = 1;
constexpr uint32_t kShutdownSend = 2;

// Event queue: struct virtio_vsock_event { le32 id; }.
constexpr uint32_t kEventTransportReset = 0;

// Largest payload of one packet (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE).
constexpr uint32_t kMaxPayload = 64 * 1024;

}  // namespace strata::vmm::virtio::vsock
