#include "oci/hooks.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "base/fd.h"

namespace strata::oci {
namespace {

Status run_hook(const Hook& h, const std::string& state_json) {
  std::vector<std::string> args = h.args.empty() ? std::vector<std::string>{h.path} : h.args;
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env = h.env;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return Error::sys("pipe");
  UniqueFd rd(p[0]), wr(p[1]);
  pid_t pid = ::fork();
  if (pid < 0) return Error::sys("fork");
  if (pid == 0) {
    ::dup2(rd.get(), 0);
    ::execve(h.path.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  rd.reset();
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  // A hook that does not read its stdin must not block us: ignore EPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  size_t off = 0;
  while (off < state_json.size()) {
    ssize_t n = ::write(wr.get(), state_json.data() + off, state_json.size() - off);
    if (n < 0) break;
    off += static_cast<size_t>(n);
  }
  wr.reset();
  int timeout_ms = h.timeout_s ? *h.timeout_s * 1000 : -1;
  struct pollfd pfd {pidfd.get(), POLLIN, 0};
  int r;
  do {
    r = ::poll(&pfd, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  int status = 0;
  if (r == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return Error("timed out after " + std::to_string(*h.timeout_s) + "s", ETIMEDOUT);
  }
  if (::waitpid(pid, &status, 0) < 0) return Error::sys("wait");
  if (WIFEXITED(status)) {
    if (WEXITSTATUS(status) == 127) return Error("exited with status 127 (missing or not executable?)");
    if (WEXITSTATUS(status) != 0) return Error("exited with status " + std::to_string(WEXITSTATUS(status)));
  } else if (WIFSIGNALED(status)) {
    return Error("killed by signal " + std::to_string(WTERMSIG(status)));
  }
  return ok();
}

}  // namespace

Status run_hooks(const std::vector<Hook>& hooks, const char* kind, const std::string& state_json) {
  for (size_t i = 0; i < hooks.size(); ++i) {
    Status s = run_hook(hooks[i], state_json);
    if (!s.ok()) {
      return std::move(s).error().context(std::string(kind) + " hook " + std::to_string(i) + " (" + hooks[i].path + ")");
    }
  }
  return ok();
}

}  // namespace strata::oci
