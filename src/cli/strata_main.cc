// strata: the user's CLI. Containers from images (`strata run`, podman/docker habits), images,
// networks. Thin: parse, call src/sandbox, src/image, src/net; print.
#include <limits.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "base/log.h"
#include "cli/strata_commands.h"

namespace strata::cli {

int fail(const Error& e) {
  std::fprintf(stderr, "strata: %s\n", e.to_string().c_str());
  return 125;
}

std::string human_duration(int64_t d) {
  if (d < 1) return "Less than a second";
  if (d < 60) return std::to_string(d) + " seconds";
  if (d < 3600) return std::to_string(d / 60) + " minutes";
  if (d < 86400) return std::to_string(d / 3600) + " hours";
  return std::to_string(d / 86400) + " days";
}

}  // namespace strata::cli

int main(int argc, char** argv) {
  using namespace strata::cli;
  Globals g;
  g.argv = argv;
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (const char* installed = std::getenv("STRATA_SELF_EXE")) {
    // Re-executed from an unwritable view of the binary (guard_self), whose path names nothing:
    // the installed one finds strata-monitor and is what the monitor runs.
    g.self_exe = installed;
    ::unsetenv("STRATA_SELF_EXE");
  } else if (n > 0) {
    self[n] = '\0';
    g.self_exe = self;
  }
  if (!g.self_exe.empty()) g.monitor_exe = g.self_exe.substr(0, g.self_exe.rfind('/')) + "/strata-monitor";
  if (const char* root = std::getenv("STRATA_ROOT")) g.root = root;

  CLI::App app{"strata: containers and micro-VMs on your own machines", "strata"};
  app.set_help_flag("--help", "Print this help");
  app.require_subcommand(1);
  app.fallthrough();
  app.allow_extras();
  app.add_option("--root", g.root, "Storage root for images, containers and networks")->capture_default_str();
  app.add_flag("--debug", g.debug, "Log debug messages");
  // The monitor's cleanup and the other commands it runs inherit it through the environment.
  app.add_option("--default-subnet",
                 "Subnet of the default network (strata0) when it is made; also "
                 "STRATA_DEFAULT_SUBNET (default 10.89.0.0/24)")
      ->each([](const std::string& v) { ::setenv("STRATA_DEFAULT_SUBNET", v.c_str(), 1); });
  app.set_version_flag("--version", "strata 0.1.0");
  add_run_command(app, g);
  add_container_commands(app, g);
  add_healthcheck_commands(app, g);
  add_image_commands(app, g);
  add_network_commands(app, g);
  add_vm_commands(app, g);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 125;
  }
  // Extras are allowed only so that run/exec receive their command words.
  if (!app.remaining().empty() && !app.got_subcommand("run") && !app.got_subcommand("exec")) {
    std::fprintf(stderr, "strata: unexpected arguments: %s\n", app.remaining()[0].c_str());
    return 125;
  }
  return g.exit_code;
}
