// VsockDevice: virtio-vsock (virtio 1.2 section 5.10) emulated in the monitor with Firecracker's
// host-side convention (docs/vsock.md): guest AF_VSOCK streams are relayed to host AF_UNIX
// streams.
//
//   Host-initiated: the device listens on `uds_path`. A host process connects and writes
//     "CONNECT <port>\n"; the device sends the guest OP_REQUEST from CID 2 and a host-side
//     ephemeral port (from 2^30) to <port>; on the guest's OP_RESPONSE it writes
//     "OK <ephemeral port>\n" to the host connection and relays bytes both ways. A guest RST
//     closes the host connection.
//   Guest-initiated: OP_REQUEST to CID 2 port P connects to the unix socket "<uds_path>_P";
//     OP_RESPONSE when it accepted, OP_RST when nothing listens there.
//
// Flow control (5.10.6.3): each side advertises buf_alloc and fwd_cnt in every packet. Towards
// the guest, the device reads a host socket only when a posted RX chain and the guest's credit
// allow, straight into the chain, never more than both. From the guest, bytes the host socket
// does not take at once wait in a per-connection buffer of buf_alloc bytes (the credit the
// device advertises), so a guest that honours its credit is never refused; one that does not
// gets OP_RST. OP_CREDIT_UPDATE goes out once half the buffer was forwarded unannounced (and on
// OP_CREDIT_REQUEST); OP_CREDIT_REQUEST when the guest's credit ran out.
//
// Closing: host EOF sends OP_SHUTDOWN (SEND, plus RCV when the host closed both ways); the
// guest's OP_SHUTDOWN with both flags, after the buffered bytes reached the host, is answered
// with OP_RST and closes the host socket; SHUTDOWN SEND alone half-closes it.
//
// Everything from the guest is untrusted: short chains, bad lengths, unknown types or ops and
// packets for unknown connections are answered with OP_RST (or dropped: a wrong source CID, an
// RST), never with a device failure. Connections are capped per device; packets waiting for RX
// buffers (RST, RESPONSE, credit messages) are capped too, and the excess dropped.
//
// Queues: 0 RX (to the guest), 1 TX (from the guest), 2 events. Host sockets are nonblocking
// and watched by the EventLoop while the device is active. Connections do not survive a
// snapshot (as in Firecracker): restore drops them and sends VIRTIO_VSOCK_EVENT_TRANSPORT_RESET.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "vmm/devices/virtio/device.h"
#include "vmm/devices/virtio/vsock_packet.h"
#include "vmm/log_rate_limiter.h"

namespace strata::vmm {
class EventLoop;
}

namespace strata::vmm::virtio {

struct VsockConfig {
  std::string id = "vsock";  // names the device in logs
  uint64_t guest_cid = 3;    // at least 3 (0-2 are reserved)
  std::string uds_path;      // the host-side listening socket
  uint16_t queue_size = 256;
  size_t max_connections = 1024;
  uint32_t buf_alloc = 256 * 1024;  // per-connection buffer (guest -> host) advertised to the guest
};

struct VsockCounters {
  uint64_t rx_packets = 0;         // to the guest
  uint64_t tx_packets = 0;         // from the guest
  uint64_t rx_bytes = 0;           // payload bytes
  uint64_t tx_bytes = 0;
  uint64_t connections_opened = 0;
  uint64_t malformed = 0;          // packets from the guest that were dropped or reset as invalid
  uint64_t dropped_control = 0;    // replies dropped because too many waited for RX buffers
};

class VsockDevice : public VirtioDevice {
 public:
  // Binds and listens on config.uds_path (a stale socket nobody listens on is replaced; any
  // other file there is refused, never removed).
  static Result<std::shared_ptr<VsockDevice>> create(VsockConfig config);
  ~VsockDevice() override;  // closes every socket and removes uds_path if it is still ours

  const VsockConfig& config() const { return config_; }
  size_t connection_count() const { return conns_.size(); }
  const VsockCounters& counters() const { return counters_; }  // under the transport's lock

  // VirtioDevice.
  DeviceType type() const override { return DeviceType::kVsock; }
  std::string name() const override { return std::string(device_type_name(type())) + " " + config_.id; }
  uint64_t features() const override;
  size_t num_queues() const override { return 3; }
  uint16_t max_queue_size(size_t) const override { return config_.queue_size; }
  void read_config(uint64_t offset, uint8_t* data, size_t len) const override;
  Status activate(const ActivateContext& ctx) override;  // needs ctx.loop
  Status process(size_t queue) override;
  void reset() override;
  nlohmann::json save_state() const override;
  Status restore_state(const nlohmann::json& state) override;

 private:
  enum class ConnState {
    kAwaitCommand,  // host connection, reading "CONNECT <port>\n"
    kLocalInit,     // OP_REQUEST sent to the guest, waiting for OP_RESPONSE
    kEstablished,
  };
  struct Conn {
    uint64_t id = 0;
    UniqueFd sock;
    ConnState state = ConnState::kAwaitCommand;
    std::string command;  // kAwaitCommand: the line so far
    uint32_t local_port = 0;  // host side
    uint32_t peer_port = 0;   // guest side
    bool registered = false;  // in the loop
    uint32_t events = 0;      // the interest registered
    // Host -> guest.
    uint32_t peer_buf_alloc = 0;
    uint32_t peer_fwd_cnt = 0;
    uint32_t rx_cnt = 0;      // payload bytes sent to the guest
    bool want_read = false;   // the socket may have data (or EOF) for the guest
    bool queued = false;      // in rx_ready_
    bool credit_requested = false;
    bool eof = false;         // host EOF relayed as OP_SHUTDOWN
    bool hup = false;         // the host closed both ways; no longer polled
    bool guest_shut_rcv = false;
    bool guest_shut_send = false;
    // Guest -> host.
    std::vector<uint8_t> tx_buf;  // bytes the host socket did not take yet, from tx_head
    size_t tx_head = 0;
    uint32_t fwd_cnt = 0;          // bytes written to the host socket
    uint32_t fwd_cnt_announced = 0;

    size_t tx_pending() const { return tx_buf.size() - tx_head; }
    uint32_t peer_credit() const {
      uint32_t in_flight = rx_cnt - peer_fwd_cnt;
      return in_flight >= peer_buf_alloc ? 0 : peer_buf_alloc - in_flight;
    }
  };
  using Key = std::pair<uint32_t, uint32_t>;  // (local_port, peer_port)

  explicit VsockDevice(VsockConfig config) : config_(std::move(config)) {}
  static Result<UniqueFd> listen_on(const std::string& path);

  // Host side.
  Status on_listener();
  // accept() failed for lack of descriptors or memory: stop watching the listener for a while.
  Status pause_accepting(int err);
  Status on_accept_timer();
  Status on_socket(uint64_t id, uint32_t events);
  void read_command(Conn& c);
  // These return false when they closed the connection (`c` is then gone).
  bool flush_tx(Conn& c);
  bool write_to_host(Conn& c, const DescriptorChain& chain, uint32_t len);
  void update_interest(Conn& c);
  void maybe_credit_update(Conn& c);
  bool register_conn(Conn& c);
  Conn* add_conn(UniqueFd sock, ConnState state);
  void close_conn(Conn& c, bool rst);
  void clear_connections();
  uint32_t allocate_local_port();

  // Guest side.
  Status process_tx();
  void handle_packet(const vsock::Header& h, const DescriptorChain& chain);
  void guest_connect(const vsock::Header& h);
  Status flush_rx();
  Status deliver_event();
  vsock::Header header_for(Conn& c, uint16_t op, uint32_t flags = 0);
  void queue_control(const vsock::Header& h);
  void queue_reply_rst(const vsock::Header& h);
  void mark_readable(Conn& c);

  VsockConfig config_;
  UniqueFd listener_;
  bool listener_registered_ = false;
  dev_t uds_dev_ = 0;  // the socket file we made, removed at the end only if still there
  ino_t uds_ino_ = 0;
  // A timerfd, made with the listener (no descriptor may be left when it is needed): while it
  // runs after EMFILE, the listener is not watched, so the level-triggered loop does not spin.
  UniqueFd accept_timer_;
  bool accept_timer_registered_ = false;
  LogRateLimiter accept_log_;
  EventLoop* loop_ = nullptr;
  Queue* rxq_ = nullptr;  // while active
  Queue* txq_ = nullptr;
  Queue* evq_ = nullptr;
  bool pending_reset_event_ = false;

  uint64_t next_id_ = 1;
  uint32_t next_local_port_ = 1u << 30;
  std::map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::map<Key, Conn*> by_key_;
  std::deque<vsock::Header> control_;  // packets without payload waiting for RX buffers
  std::deque<uint64_t> rx_ready_;      // connections with data (or EOF) for the guest
  DescriptorChain chain_;
  std::vector<iovec> iov_;
  VsockCounters counters_;
};

}  // namespace strata::vmm::virtio
