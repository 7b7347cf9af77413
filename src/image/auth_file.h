// Registry credentials in the auth.json format podman, skopeo and buildah read and write
// (containers-auth.json(5)): {"auths": {"<registry>": {"auth": "<base64 of user:password>"}}}.
// Other keys and entries in the file are preserved when strata writes it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "base/error.h"
#include "base/strings.h"

namespace strata::image {

// $REGISTRY_AUTH_FILE, else ${XDG_RUNTIME_DIR}/containers/auth.json, else
// /run/containers/<uid>/auth.json (where podman keeps root's credentials).
std::string default_auth_file();

// The (user, password) stored for `domain`, or nullopt when the file or the entry does not
// exist. docker.io also matches the legacy keys "https://index.docker.io/v1/" and
// "index.docker.io"; "https://<domain>" and "<domain>/" prefixed keys are accepted too.
Result<std::optional<std::pair<std::string, std::string>>> load_credentials(const std::string& file,
                                                                            const std::string& domain);
// Adds or replaces the entry of `domain`; the file is written atomically with mode 0600.
Status save_credentials(const std::string& file, const std::string& domain, const std::string& user,
                        const std::string& pass);
// Removes the entry of `domain`; an error (ENOENT) when there was none.
Status remove_credentials(const std::string& file, const std::string& domain);

using str::base64_decode;
using str::base64_encode;

}  // namespace strata::image
