// Router: Firecracker's REST API without the sockets. A request (method, target, body) becomes a
// response (status, JSON body), following Firecracker's api_server/parsed_request.rs (which path
// and method mean what, ids, body checks) and rpc_interface.rs (which calls are pre-boot or
// post-boot only, the fault_message texts). Success is 204 with no body for PUT/PATCH and 200
// with JSON for GET; every refusal is 400 {"fault_message": "..."}; 500 is kept for failures of
// strata-vmm itself. The router keeps the pre-boot configuration and hands it to the
// controller at InstanceStart. Not thread-safe: one caller (the API server's thread).
#pragma once

#include <string>
#include <string_view>

#include "vmm/api/controller.h"
#include "vmm/api/vm_config.h"

namespace strata::vmm::api {

// The Firecracker release whose API strata-vmm follows; GET /version and GET / report it, as
// clients compare it to decide which fields they may send.
inline constexpr std::string_view kFirecrackerApiVersion = "1.7.0";

struct InstanceInfo {
  std::string id = "anonymous-instance";  // --id; Firecracker's default
  std::string vmm_version{kFirecrackerApiVersion};
  std::string app_name = "strata-vmm";
};

struct ApiResponse {
  unsigned status = 204;
  std::string body;  // JSON; empty for 204
};

class Router {
 public:
  explicit Router(VmController& controller, InstanceInfo info = {});

  // `body` empty means no body (Firecracker tells "Empty PUT request." from a bad body so).
  ApiResponse handle(std::string_view method, std::string_view target, std::string_view body);

  // For --config-file: the configuration the machine was (or is about to be) started with, so
  // that GET /vm/config shows it and snapshot loads are refused as after a PUT.
  void set_config(VmConfig config);
  const VmConfig& config() const { return config_; }

 private:
  ApiResponse dispatch(std::string_view method, std::string_view target, std::string_view body);

  VmController& controller_;
  InstanceInfo info_;
  VmConfig config_;
  // A boot-specific resource was configured: Firecracker then refuses PUT /snapshot/load.
  bool boot_path_ = false;
};

// {"fault_message": message}, with invalid UTF-8 replaced.
std::string fault_body(std::string_view message);

}  // namespace strata::vmm::api
