#include "image/overlay.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "base/fd.h"

namespace strata::image {

namespace {

// Characters that overlay's option parser takes as separators or escapes.
bool plain_path(const std::string& p) { return p.find_first_of(",:\\") == std::string::npos; }

Status mount_legacy(const std::vector<std::string>& lowers, const std::string& upper, const std::string& work,
                    const std::string& target) {
  std::string lower;
  for (const auto& l : lowers) {
    if (!lower.empty()) lower += ':';
    lower += l;
  }
  std::string opts = "lowerdir=" + lower;
  if (!upper.empty()) opts += ",upperdir=" + upper + ",workdir=" + work;
  if (opts.size() >= static_cast<size_t>(::getpagesize())) {
    struct utsname u {};
    ::uname(&u);
    return Error("mount overlay on " + target + ": " + std::to_string(lowers.size()) +
                     " layers need more than a page of mount options, and this kernel (" + u.release +
                     ") has no overlayfs lowerdir+ (Linux 6.8) to take them one at a time",
                 E2BIG);
  }
  if (::mount("overlay", target.c_str(), "overlay", 0, opts.c_str()) != 0)
    return Error::sys("mount overlay on " + target);
  return ok();
}

}  // namespace

Status mount_overlay(const std::vector<std::string>& lowers, const std::string& upper,
                     const std::string& work, const std::string& target) {
  if (lowers.empty()) return Error("mount overlay on " + target + ": no layers");
  if (lowers.size() > kMaxOverlayLayers) {
    return Error("mount overlay on " + target + ": " + std::to_string(lowers.size()) +
                     " layers; overlayfs stacks at most " + std::to_string(kMaxOverlayLayers),
                 E2BIG);
  }
  if (upper.empty() != work.empty())
    return Error("mount overlay on " + target + ": an upper directory needs a work directory");
  for (const auto* p : {&upper, &work}) {
    if (!plain_path(*p))
      return Error("mount overlay on " + target + ": path " + *p + " has ',', ':' or '\\'");
  }
  for (const auto& l : lowers) {
    if (!plain_path(l))
      return Error("mount overlay on " + target + ": layer path " + l + " has ',', ':' or '\\'");
  }
  UniqueFd fs(::fsopen("overlay", FSOPEN_CLOEXEC));
  if (!fs) return mount_legacy(lowers, upper, work, target);  // no new mount API (before 5.2)
  for (const auto& l : lowers) {
    if (::fsconfig(fs.get(), FSCONFIG_SET_STRING, "lowerdir+", l.c_str(), 0) != 0) {
      // EINVAL on the first one: a kernel before 6.8 does not know the key.
      if (errno == EINVAL && &l == &lowers.front()) return mount_legacy(lowers, upper, work, target);
      return Error::sys("mount overlay on " + target + ": layer " + l);
    }
  }
  if (!upper.empty() && ::fsconfig(fs.get(), FSCONFIG_SET_STRING, "upperdir", upper.c_str(), 0) != 0)
    return Error::sys("mount overlay on " + target + ": upperdir " + upper);
  if (!work.empty() && ::fsconfig(fs.get(), FSCONFIG_SET_STRING, "workdir", work.c_str(), 0) != 0)
    return Error::sys("mount overlay on " + target + ": workdir " + work);
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
    return Error::sys("mount overlay on " + target);
  UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, 0));
  if (!mnt) return Error::sys("mount overlay on " + target);
  if (::move_mount(mnt.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0)
    return Error::sys("mount overlay on " + target);
  return ok();
}

}  // namespace strata::image
