// An overlay of an image's unpacked layers: a container's root (with a writable upper directory
// of its own) or a read-only merged view (image export).
#pragma once

#include <string>
#include <vector>

#include "base/error.h"

namespace strata::image {

// overlayfs stacks at most this many lower layers (the kernel's OVL_MAX_STACK).
inline constexpr size_t kMaxOverlayLayers = 500;

// Mounts an overlay on `target`: `lowers` top layer first, then upper and work directories
// (both empty: a read-only overlay, which needs at least two layers).
// The layers are handed to the kernel one at a time (fsconfig "lowerdir+", Linux 6.8), so their
// number is not bounded by a page of mount options as with mount(2)'s "lowerdir=a:b:c" (which
// stopped at about 300 layers with strata's layer paths); kernels without lowerdir+ get that
// form, and an image too deep for it fails naming the limit.
Status mount_overlay(const std::vector<std::string>& lowers, const std::string& upper,
                     const std::string& work, const std::string& target);

}  // namespace strata::image
