// The default pre-boot checks of VmController: the files a resource names can be opened, and are
// of a kind the monitor will use (host_files.h): a kernel or initrd is a regular file, a drive a
// regular file or a block device. Opening never waits (a FIFO cannot hang the API thread).
#include "vmm/api/controller.h"

#include "vmm/host_files.h"

namespace strata::vmm::api {

std::string_view to_string(InstanceState s) {
  switch (s) {
    case InstanceState::kNotStarted: return "Not started";
    case InstanceState::kRunning: return "Running";
    case InstanceState::kPaused: return "Paused";
  }
  return "Not started";
}

Status VmController::check_boot_source(const BootSource& boot) {
  // Firecracker's texts before the cause.
  if (auto k = open_regular_file(boot.kernel_image_path, "kernel"); !k)
    return Error("The kernel file cannot be opened: " + k.error().to_string());
  if (boot.initrd_path) {
    if (auto i = open_regular_file(*boot.initrd_path, "initrd"); !i)
      return Error("The initrd file cannot be opened due to invalid path or invalid permissions. " +
                   i.error().to_string());
  }
  return ok();
}

Status VmController::check_drive(const Drive& drive) {
  auto fd = open_disk_image(drive.path_on_host, drive.is_read_only, "drive file");
  if (!fd) return Error(fd.error().to_string());
  return ok();
}

}  // namespace strata::vmm::api
