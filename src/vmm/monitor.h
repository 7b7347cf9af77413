// Monitor: strata-vmm's side of the Firecracker API (api::VmController over a Machine). The API
// server's thread configures, starts, pauses, snapshots; the process's main thread waits in
// run_until_exit() for a machine to exist and runs its event loop until the guest ends.
#pragma once

#include <condition_variable>
#include <future>
#include <optional>
#include <memory>
#include <mutex>
#include <string>

#include "base/fd.h"
#include "vmm/api/controller.h"
#include "vmm/machine.h"

namespace strata::vmm {

// The command line when boot_args is not given (Firecracker's default plus the serial console).
extern const char* const kDefaultCmdline;

// VmConfig -> MachineSpec: devices in Firecracker's order (drives, the root first; network
// interfaces; vsock; entropy), "root=/dev/vda ro|rw" (or PARTUUID) for a root drive.
Result<MachineSpec> spec_from_config(const api::VmConfig& config, int console_out, int console_in);

class Monitor : public api::VmController {
 public:
  // Starts creating the KVM VM in the background (see PreparedVm).
  Monitor(int console_out, int console_in);
  ~Monitor() override;

  api::InstanceState state() const override;
  Status check_boot_source(const api::BootSource& boot) override;
  Status configure_logger(const api::Logger& logger) override;
  Status configure_metrics(const api::Metrics& metrics) override;
  Status start(const api::VmConfig& config) override;
  Status pause() override;
  Status resume() override;
  Status send_ctrl_alt_del() override;
  Status flush_metrics() override;
  Status snapshot_create(const api::SnapshotCreate& params) override;
  Result<api::VmConfig> snapshot_load(const api::SnapshotLoad& params) override;
  Status patch_drive(const std::string& drive_id, const std::string& new_path) override;

  // Blocks until a machine runs (or shutdown()), runs it until the guest ends; the report says
  // how (kStopped after shutdown() with no machine).
  ExitReport run_until_exit();
  // Ends the VM, or the wait for one (signals, the API going away).
  void shutdown();

 private:
  Status launch(std::unique_ptr<Machine> m, bool paused);
  // The VM prepared at construction, once; nullopt afterwards or when preparing failed (the
  // machine is then created the usual way, which reports the error).
  std::optional<PreparedVm> take_prepared();

  const int console_out_, console_in_;
  UniqueFd serial_fd_;  // PUT /serial's file, when given
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<Machine> machine_;
  bool running_ = false;  // run_until_exit took the machine
  bool paused_ = false;
  bool shutdown_ = false;
  std::string metrics_path_;
  UniqueFd metrics_fd_;  // PUT /metrics's file, open_output()
  std::future<Result<PreparedVm>> prepared_;
};

}  // namespace strata::vmm
