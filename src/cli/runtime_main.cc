// strata-runtime: an OCI runtime with runc's command line (so podman, conmon and containerd
// drive it unchanged). Thin: parse, call src/oci, print. Errors go to stderr and, with
// --log, to the log file in the chosen --log-format (conmon reads the JSON form).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <set>

#include "base/fs.h"
#include "base/log.h"
#include "base/strings.h"
#include "cli/runtime_commands.h"
#include "oci/container.h"

namespace {

// Options of `exec` and `ps` that take a value: the first other word is the container id and
// everything after it is the command (exec) or ps's own options, as with runc.
const std::set<std::string> kExecValueOpts = {"--console-socket",
                                              "--cwd",
                                              "--env",
                                              "-e",
                                              "--user",
                                              "-u",
                                              "--additional-gids",
                                              "-g",
                                              "--process",
                                              "-p",
                                              "--pid-file",
                                              "--process-label",
                                              "--apparmor",
                                              "--cap",
                                              "-c",
                                              "--preserve-fds",
                                              "--cgroup"};
const std::set<std::string> kPsValueOpts = {"--format", "-f"};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // Split off the trailing command of exec/ps before CLI11 sees it.
  std::vector<std::string> tail;
  if (size_t i = strata::cli::subcommand_index(args);
      i < args.size() && (args[i] == "exec" || args[i] == "ps")) {
    const auto& value_opts = args[i] == "exec" ? kExecValueOpts : kPsValueOpts;
    size_t j = i + 1;
    while (j < args.size()) {
      const std::string& a = args[j];
      if (a == "--") {
        args.erase(args.begin() + static_cast<long>(j));
        break;
      }
      if (a.size() > 1 && a[0] == '-') {
        if (a.find('=') == std::string::npos && value_opts.count(a)) ++j;
        ++j;
        continue;
      }
      break;  // the container id
    }
    if (j + 1 < args.size()) {
      tail.assign(args.begin() + static_cast<long>(j + 1), args.end());
      args.resize(j + 1);
    }
  }
  return strata::cli::run_runtime_cli(args, tail, argv);
}
