// Image references ("busybox", "quay.io/team/app:1.2", "localhost:5000/x@sha256:..") in the
// grammar of docker/distribution's reference package, normalized the way docker and podman
// normalize what a user types: no domain means docker.io, and a one-component path on docker.io
// lives under library/.
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace strata::image {

inline constexpr std::string_view kDockerDomain = "docker.io";

struct Reference {
  std::string domain;  // "docker.io", "127.0.0.1:5000", "localhost:5000", "[::1]:5000"
  std::string path;    // "library/busybox", "team/app"
  std::string tag;     // "latest" when neither tag nor digest was given; "" with a bare digest
  std::string digest;  // "sha256:<hex>" or ""

  std::string repository() const;  // domain + "/" + path
  std::string str() const;         // repository[:tag][@digest]
  // How docker/podman print it: "busybox:latest", "team/app:1", "quay.io/x/y:2".
  std::string familiar() const;
  bool operator==(const Reference&) const = default;
};

// Parses and normalizes; errors read `invalid image reference "Foo/bar": repository name must
// be lowercase`.
Result<Reference> parse_reference(std::string_view s);

}  // namespace strata::image
