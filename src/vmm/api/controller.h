// VmController: what the API router asks of the monitor. strata-vmm's main implements it over
// a Machine; tests and the fuzzer use fakes. The router owns the pre-boot configuration and the
// API's rules (which calls are pre-boot or post-boot only, ids, bodies); the controller only acts
// and reports. Its error messages reach the client as fault_message, after the router's prefix
// ("Start microvm error: ", "Load snapshot error: ", ...), so they should say what failed on
// what: "load kernel /k/vmlinux: not a bzImage or ELF kernel".
// Every method is called from the API server's thread, one call at a time.
#pragma once

#include <string>

#include "base/error.h"
#include "vmm/api/vm_config.h"

namespace strata::vmm::api {

enum class InstanceState { kNotStarted, kRunning, kPaused };

// "Not started" | "Running" | "Paused", Firecracker's InstanceInfo.state texts.
std::string_view to_string(InstanceState s);

class VmController {
 public:
  virtual ~VmController() = default;

  virtual InstanceState state() const = 0;

  // Checks made when a resource is PUT, before boot, as Firecracker opens the kernel, initrd and
  // drive files then. The defaults open the files (non-blocking, so a FIFO cannot hang the API
  // thread), check their type (a kernel or initrd must be a regular file, a drive a regular file
  // or a block device) and close them; a monitor may check more (e.g. the kernel's format).
  // Errors are the bare cause, e.g. "open kernel /k/vmlinux: ENOENT (No such file or directory)",
  // "kernel /k/fifo: not a regular file (a FIFO)".
  virtual Status check_boot_source(const BootSource& boot);
  virtual Status check_drive(const Drive& drive);
  virtual Status check_network_interface(const NetworkInterface&) { return ok(); }
  virtual Status check_vsock(const Vsock&) { return ok(); }

  // PUT /logger and PUT /metrics take effect at once (pre-boot only, as in Firecracker).
  virtual Status configure_logger(const Logger& logger) = 0;
  virtual Status configure_metrics(const Metrics& metrics) = 0;

  // InstanceStart: builds and boots the machine. On success state() is kRunning.
  virtual Status start(const VmConfig& config) = 0;
  virtual Status pause() = 0;   // PATCH /vm Paused
  virtual Status resume() = 0;  // PATCH /vm Resumed
  virtual Status send_ctrl_alt_del() = 0;
  virtual Status flush_metrics() = 0;
  // PUT /snapshot/create; the router calls it only while paused.
  virtual Status snapshot_create(const SnapshotCreate& params) = 0;
  // PUT /snapshot/load, before boot only: restores the machine (paused, or running when
  // params.resume_vm) and returns the configuration it was restored with (GET /vm/config).
  virtual Result<VmConfig> snapshot_load(const SnapshotLoad& params) = 0;
  // PATCH /drives/{id} after boot: the drive's backing file is now new_path (the guest is told
  // its capacity may have changed). The router has checked that the drive exists.
  virtual Status patch_drive(const std::string& drive_id, const std::string& new_path) = 0;
};

}  // namespace strata::vmm::api
