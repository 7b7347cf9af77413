// libFuzzer target for strata-vmm's Firecracker API (STYLE.md section 12). The first byte picks:
//   even: the --config-file parser on the rest. A configuration that parses must print (GET
//         /vm/config) to JSON that parses back to the same configuration.
//   odd:  a sequence of requests to a fresh Router with a fake controller, separated by NUL:
//         "METHOD TARGET\nBODY". Every answer must be 200 with JSON, 204 with no body, or 400
//         with a JSON fault_message; a 500 (an exception escaped the parsers) or a crash is a bug.
// Seeds: api_fuzz_corpus/.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "vmm/api/router.h"
#include "vmm/api/vm_config.h"

namespace {

using namespace strata;
using namespace strata::vmm::api;

// Moves through the states as a monitor would; touches no files.
class FuzzController : public VmController {
 public:
  InstanceState state() const override { return state_; }
  Status check_boot_source(const BootSource& b) override {
    if (b.kernel_image_path.find("missing") != std::string::npos) return Error("The kernel file cannot be opened");
    return ok();
  }
  Status check_drive(const Drive&) override { return ok(); }
  Status configure_logger(const Logger&) override { return ok(); }
  Status configure_metrics(const Metrics&) override { return ok(); }
  Status start(const VmConfig& c) override {
    if (c.boot_source && c.boot_source->kernel_image_path.find("notakernel") != std::string::npos)
      return Error("not a kernel");
    state_ = InstanceState::kRunning;
    return ok();
  }
  Status pause() override {
    state_ = InstanceState::kPaused;
    return ok();
  }
  Status resume() override {
    state_ = InstanceState::kRunning;
    return ok();
  }
  Status send_ctrl_alt_del() override { return ok(); }
  Status flush_metrics() override { return ok(); }
  Status snapshot_create(const SnapshotCreate&) override { return ok(); }
  Result<VmConfig> snapshot_load(const SnapshotLoad& p) override {
    if (p.snapshot_path.find("bad") != std::string::npos) return Error("bad snapshot");
    state_ = p.resume_vm ? InstanceState::kRunning : InstanceState::kPaused;
    return VmConfig{};
  }
  Status patch_drive(const std::string&, const std::string&) override { return ok(); }

 private:
  InstanceState state_ = InstanceState::kNotStarted;
};

void check_config(std::string_view text) {
  auto c = parse_vm_config(text);
  if (!c.ok()) {
    if (c.error().message().empty()) __builtin_trap();
    return;
  }
  auto again = parse_vm_config(to_json(*c).dump(-1, ' ', false, nlohmann::json::error_handler_t::strict));
  if (!again.ok()) __builtin_trap();
  if (c->vsock) c->vsock->vsock_id.reset();  // deprecated: accepted, never printed
  if (!(*again == *c)) __builtin_trap();
}

void check_response(const ApiResponse& r) {
  switch (r.status) {
    case 204:
      if (!r.body.empty()) __builtin_trap();
      return;
    case 200:
    case 400: {
      auto j = nlohmann::json::parse(r.body, nullptr, false);
      if (j.is_discarded()) __builtin_trap();
      if (r.status == 400 && (!j.is_object() || !j.contains("fault_message"))) __builtin_trap();
      return;
    }
    default:
      __builtin_trap();
  }
}

void run_requests(std::string_view input) {
  FuzzController ctl;
  Router router(ctl);
  for (int n = 0; n < 32 && !input.empty(); ++n) {
    size_t end = input.find('\0');
    std::string_view req = input.substr(0, end);
    input = end == std::string_view::npos ? std::string_view() : input.substr(end + 1);
    size_t nl = req.find('\n');
    std::string_view line = req.substr(0, nl);
    std::string_view body = nl == std::string_view::npos ? std::string_view() : req.substr(nl + 1);
    size_t sp = line.find(' ');
    std::string_view method = line.substr(0, sp);
    std::string_view target = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    check_response(router.handle(method, target, body));
  }
  // Whatever happened, the configuration still prints and parses back (to itself once a boot
  // source is set: before that GET /vm/config prints Firecracker's empty one).
  VmConfig config = router.config();
  if (config.vsock) config.vsock->vsock_id.reset();
  auto again = parse_vm_config(to_json(config).dump(-1, ' ', false, nlohmann::json::error_handler_t::strict));
  if (!again.ok()) __builtin_trap();
  if (config.boot_source && !(*again == config)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) check_config(rest);
  else run_requests(rest);
  return 0;
}
