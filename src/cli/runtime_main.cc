// strata-runtime: an OCI runtime with runc's command line (so podman, conmon and containerd
// drive it unchanged). Thin: parse, call src/oci, print. Errors go to stderr and, with
// --log, to the log file in the chosen --log-format (conmon reads the JSON form).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <iostream>
#include <set>
#include <spdlog/spdlog.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/strings.h"
#include "cli/runtime_commands.h"
#include "oci/container.h"

namespace {

// Options of `exec` and `ps` that take a value: the first other word is the container id and
// everything after it is the command (exec) or ps's own options, as with runc.
const std::set<std::string> kExecValueOpts = {"--console-socket", "--cwd", "--env", "-e", "--user", "-u",
                                              "--additional-gids", "-g", "--process", "-p", "--pid-file",
                                              "--process-label", "--apparmor", "--cap", "-c", "--preserve-fds",
                                              "--cgroup"};
const std::set<std::string> kPsValueOpts = {"--format", "-f"};
const std::set<std::string> kGlobalValueOpts = {"--root", "--log", "--log-format", "--criu"};

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

// CVE-2019-5736: a process in a container that gets hold of the runtime's binary (through
// /proc/<pid>/exe of an init that has not exec'd yet, or with an entrypoint "#!/proc/self/exe"
// that makes the kernel run the runtime itself inside the container) could reopen it for writing
// once the runtime has exited and replace the host's strata-runtime. The commands that start
// processes in a container therefore re-exec from a sealed memfd copy, as runc and crun do:
// their /proc/self/exe is then an anonymous file that nobody can write.
constexpr int kSeals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;

bool starts_container_processes(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (kGlobalValueOpts.count(args[i])) {
      ++i;
      continue;
    }
    if (!args[i].empty() && args[i][0] == '-') continue;
    return args[i] == "create" || args[i] == "run" || args[i] == "exec";
  }
  return false;
}

bool running_from_sealed_copy() {
  int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  int seals = ::fcntl(fd, F_GET_SEALS);
  ::close(fd);
  return seals >= 0 && (seals & kSeals) == kSeals;
}

// Returns only on failure, with what failed.
std::string reexec_from_sealed_copy(char** argv) {
  int exe = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (exe < 0) return std::string("open /proc/self/exe: ") + std::strerror(errno);
  int mfd = ::memfd_create("strata-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (mfd < 0 && errno == EINVAL) mfd = ::memfd_create("strata-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mfd < 0) return std::string("memfd_create: ") + std::strerror(errno);
  struct stat st {};
  if (::fstat(exe, &st) != 0) return std::string("stat /proc/self/exe: ") + std::strerror(errno);
  for (off_t done = 0; done < st.st_size;) {
    ssize_t n = ::sendfile(mfd, exe, nullptr, static_cast<size_t>(st.st_size - done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::string("copy /proc/self/exe to a memfd: ") + (n < 0 ? std::strerror(errno) : "short copy");
    done += n;
  }
  ::close(exe);
  if (::fcntl(mfd, F_ADD_SEALS, kSeals) != 0) return std::string("seal the memfd copy: ") + std::strerror(errno);
  ::fexecve(mfd, argv, environ);
  return std::string("exec the sealed copy of strata-runtime: ") + std::strerror(errno);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (starts_container_processes(args) && !running_from_sealed_copy()) {
    std::string err = reexec_from_sealed_copy(argv);
    std::fprintf(stderr, "strata-runtime: %s (refusing to start container processes from a writable binary)\n",
                 err.c_str());
    return 1;
  }
  // Split off the trailing command of exec/ps before CLI11 sees it.
  std::vector<std::string> tail;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] != "exec" && args[i] != "ps") {
      if (kGlobalValueOpts.count(args[i])) ++i;
      continue;
    }
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
    break;
  }
  return strata::cli::run_runtime_cli(args, tail);
}
