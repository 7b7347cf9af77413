// The default pre-boot checks of VmController: the files a resource names can be opened.
#include "vmm/api/controller.h"

#include <fcntl.h>

#include "base/fd.h"

namespace strata::vmm::api {

namespace {

// O_NONBLOCK: a FIFO or a device would otherwise block the API thread in open().
Status can_open(const std::string& path, int flags, std::string_view what) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) return Error::sys(std::string(what) + " " + path);
  return ok();
}

}  // namespace

std::string_view to_string(InstanceState s) {
  switch (s) {
    case InstanceState::kNotStarted: return "Not started";
    case InstanceState::kRunning: return "Running";
    case InstanceState::kPaused: return "Paused";
  }
  return "Not started";
}

Status VmController::check_boot_source(const BootSource& boot) {
  Status s = can_open(boot.kernel_image_path, O_RDONLY, "open kernel");
  if (!s.ok()) return Error("The kernel file cannot be opened: " + s.error().to_string());
  if (boot.initrd_path) {
    s = can_open(*boot.initrd_path, O_RDONLY, "open initrd");
    if (!s.ok())
      return Error("The initrd file cannot be opened due to invalid path or invalid permissions. " +
                   s.error().to_string());
  }
  return ok();
}

Status VmController::check_drive(const Drive& drive) {
  Status s = can_open(drive.path_on_host, drive.is_read_only ? O_RDONLY : O_RDWR, "open drive file");
  if (!s.ok()) return Error(s.error().to_string());
  return ok();
}

}  // namespace strata::vmm::api
