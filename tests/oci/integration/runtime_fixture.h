// The fixture of the strata-runtime integration tests: each test gets its own temporary --root and
// bundle (config.json pointing at the shared busybox rootfs with /bin/probe), runs the built
// strata-runtime as a subprocess (stdout/stderr captured in files, so that a container holding
// them open never blocks the test), and ends with a residue check (STYLE.md section 11): no mount
// under its paths in /proc/self/mountinfo, no cgroup directory named after its container ids in
// any /sys/fs/cgroup hierarchy (including the unified one), an empty --root, and no process left
// that carries the test's tag in its environment (the runtime and every container process do).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace strata::oci::it {

using Json = nlohmann::json;
using namespace std::chrono_literals;

struct RunResult {
  int code = -1;  // exit status, 128+N for death by signal N, -1 on timeout
  std::string out, err;
  bool timed_out = false;
};

struct RunOptions {
  std::string stdin_data;      // fed on stdin (a file); /dev/null otherwise
  std::vector<int> extra_fds;  // become fds 3, 4, ... of the runtime
  std::optional<uid_t> uid;    // run as this uid (and gid below) instead of root
  std::optional<gid_t> gid;
  std::vector<std::string> env;  // added to the runtime's environment
  std::string cwd;               // working directory of the runtime
  std::chrono::milliseconds timeout = 30s;
};

// Polls a file until it contains `needle`.
bool wait_file_contains(const std::string& path, const std::string& needle,
                        std::chrono::milliseconds timeout = 10s);
std::string read_file(const std::string& path);  // "" if unreadable
void write_file(const std::string& path, const std::string& data, mode_t mode = 0644);
// The last line of text holding a JSON object, parsed (null if none parses).
Json last_json(const std::string& text);

// A strata-runtime process started in the background.
class AsyncRun {
 public:
  AsyncRun() = default;
  AsyncRun(pid_t pid, std::string out_path, std::string err_path, std::chrono::milliseconds timeout)
      : pid_(pid), out_path_(std::move(out_path)), err_path_(std::move(err_path)), timeout_(timeout) {}
  AsyncRun(AsyncRun&& o) noexcept { *this = std::move(o); }
  AsyncRun& operator=(AsyncRun&& o) noexcept;
  AsyncRun(const AsyncRun&) = delete;
  AsyncRun& operator=(const AsyncRun&) = delete;
  ~AsyncRun();

  pid_t pid() const { return pid_; }
  // Waits for the exit (SIGKILL after the timeout) and collects the output.
  RunResult wait();
  bool running() const;
  // What it has written so far.
  std::string out() const;
  std::string err() const;
  // Polls out() until it contains needle.
  bool wait_out(const std::string& needle, std::chrono::milliseconds timeout = 10s) const;

 private:
  pid_t pid_ = -1;
  std::string out_path_, err_path_;
  std::chrono::milliseconds timeout_{30000};
};

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // A container id unique to this test (and process), remembered for the residue check.
  std::string id(const std::string& name);
  // The default config (`strata-runtime spec` with terminal off, root.path at the shared rootfs,
  // read-only root, args = /bin/probe, the test's tag in process.env).
  Json base_config() const;
  // Writes cfg as <bundle>/config.json (bundle_ by default).
  void write_config(const Json& cfg, const std::string& bundle = "");
  // strata-runtime --root <root_> ARGS...
  RunResult rt(const std::vector<std::string>& args, const RunOptions& opts = {});
  AsyncRun rt_async(const std::vector<std::string>& args, const RunOptions& opts = {});
  // Any program with the test's tag in its environment (for processes the residue check must see).
  RunResult run_cmd(const std::vector<std::string>& argv, const RunOptions& opts = {});
  // `run -d` of cfg (written to bundle_) as cid; EXPECTs success. The container's stdout and
  // stderr are the returned run's out() and err().
  AsyncRun run_detached(const Json& cfg, const std::string& cid);
  // `run` of cfg with args; the probe's JSON (last line of stdout). Fails the test on a non-zero
  // exit or unparsable output.
  Json probe(Json cfg, const std::vector<std::string>& args = {"/bin/probe"});
  // `state ID` parsed; null on failure.
  Json state(const std::string& cid);
  // Polls `state` until its status is `status` (or the container is gone when status is "").
  bool wait_status(const std::string& cid, const std::string& status,
                   std::chrono::milliseconds timeout = 10s);
  // The v1 cgroup directory of a container in one hierarchy (from the state dir's state.json).
  std::string cgroup_dir(const std::string& cid, const std::string& controller);
  // Makes dir (and parents) owned by uid/gid.
  static void make_dir(const std::string& dir, mode_t mode = 0755, uid_t uid = 0, gid_t gid = 0);

  // Residue: what TearDown checks, callable mid-test (e.g. after a failed create).
  void expect_no_residue(const std::string& when);

  static const std::string kRuntime;  // STRATA_RUNTIME_BIN
  static const std::string kRootfs;   // STRATA_ROOTFS_DIR
  std::string runtime_ = kRuntime;    // the binary rt() runs
  std::string tmp_;                   // per-test directory (mode 0755)
  std::string root_;                  // --root
  std::string bundle_;                // default bundle
  std::string tag_;                   // STRATA_IT_TAG value
  std::vector<std::string> ids_;
  int counter_ = 0;
  // Set by a test running the runtime as another user: TearDown cleans with that user too.
  std::optional<uid_t> owner_uid_;
  std::optional<gid_t> owner_gid_;

 private:
  std::vector<std::string> residue();
  void force_cleanup();
};

}  // namespace strata::oci::it
