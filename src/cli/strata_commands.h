// The command groups of the `strata` CLI (docker/podman habits), one file each:
// strata_run.cc (run), strata_container.cc (ps logs stop start restart kill rm exec inspect
// stats, container cleanup), strata_healthcheck.cc (healthcheck run),
// strata_image.cc (image pull/push/ls/inspect/rm/prune/tag/import/export/save/load, login),
// strata_network.cc (network create/ls/inspect/rm), strata_vm.cc (vm ...).
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "image/image_config.h"
#include "sandbox/container.h"

namespace strata::cli {

struct Globals {
  std::string root = "/var/lib/strata";
  bool debug = false;
  int exit_code = 0;
  // Binaries beside this one (build/bin or /usr/local/bin).
  std::string self_exe;
  std::string monitor_exe;
  char** argv = nullptr;  // main's, to re-execute the command (guard_self)
};

// Prints "strata: <message>" on stderr and returns exit code 125 (podman's code for an error
// of the tool itself, as opposed to the container's own exit code).
int fail(const Error& e);
// "Less than a second", "5 seconds", "3 minutes", "2 hours", "4 days" (podman's wording for
// CREATED and STATUS columns; callers add " ago").
std::string human_duration(int64_t seconds);

// What `strata run` takes from an image (strata_image.cc): its layers, bottom first, and the
// defaults of its config.
struct RunImage {
  std::string name;    // as the user wrote it, normalized ("docker.io/library/busybox:latest")
  std::string digest;  // manifest digest
  std::vector<std::string> layers;
  image::ImageConfig config;
};
// pull_policy: "missing" (pull when not present), "always", "never".
Result<RunImage> image_for_run(const Globals& g, const std::string& ref, const std::string& pull_policy);

// strata run (strata_run.cc)
void add_run_command(CLI::App& app, Globals& g);
// strata ps logs stop start restart kill rm exec inspect stats, container cleanup
// (strata_container.cc)
void add_container_commands(CLI::App& app, Globals& g);
// strata healthcheck run (strata_healthcheck.cc)
void add_healthcheck_commands(CLI::App& app, Globals& g);
// How the container commands launch one: the binaries the monitor is exec'd from and runs.
sandbox::LaunchOptions launch_options(const Globals& g);
// The IMAGE/CONTAINER and COMMAND words after a prefix_command subcommand's own options.
std::vector<std::string> command_words(CLI::App* sub);
// Before a command makes processes of a container that needs it (sandbox::needs_unwritable_self),
// re-executes the whole command from an unwritable copy of strata: returns ok() when nothing
// was needed, an error if the re-exec failed (it does not return otherwise).
Status guard_self(const Globals& g, const sandbox::ContainerConfig& c);
// guard_self for the named containers, all before any is acted on (a re-exec starts the
// command over); names that do not resolve are left to the command to report.
Status guard_self_for(const Globals& g, const std::vector<std::string>& keys);

// Opens the store, resolves a name or id, and calls f(store, id); a failure is printed and
// returns 125.
template <class F>
int with_container(Globals& g, const std::string& key, F&& f) {
  auto store = sandbox::ContainerStore::open(g.root);
  if (!store) return fail(store.error());
  auto id = store->resolve(key);
  if (!id) return fail(id.error());
  return f(*store, *id);
}
void add_image_commands(CLI::App& app, Globals& g);
// strata image import | export | save | load (strata_image_archive.cc), under `image`.
void add_image_archive_commands(CLI::App& image, Globals& g);
void add_network_commands(CLI::App& app, Globals& g);
// strata vm run|ls|stop|rm|pause|resume|snapshot|restore (strata_vm.cc): strata-vmm processes.
void add_vm_commands(CLI::App& app, Globals& g);

}  // namespace strata::cli
