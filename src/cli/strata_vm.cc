// strata vm: micro-VMs from the user's CLI, each one a strata-vmm process (one VM per
// process, as Firecracker) configured through its Firecracker API on a unix socket.
//
//   strata vm run [-d] [--name N] --kernel K [--initrd I] [--disk IMG[:ro]]... [--mem MiB]
//                 [--vcpus N] [--net TAP] [--vsock CID] [--cmdline ...]
//   strata vm run [-d] --bundle DIR [--kernel K] [--name N] [--disk ...] [--mem MiB] [--vcpus N]
//                 [--net TAP] [--cmdline EXTRA]: the bundle's process in a VM, its exit code
//                 returned (sandbox/vm_bundle.h); STRATA_VMM names another Firecracker-compatible
//                 monitor (the default is strata-vmm beside strata)
//   strata vm ls | logs ID | stop ID | rm [-f] ID | pause ID | resume ID | snapshot ID DIR | restore DIR
//
// State: <root>/vms/<short id>/{vm.json (what the VM is), config.json (its Firecracker config),
// api.sock, console.log (detached VMs), vsock.sock, root.ext4 and exit (bundles)}. A foreground
// run removes its directory when the VM ends; a detached one stays (ls shows it Exited) until
// `strata vm rm`.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/cleanup.h"
#include "base/fd.h"
#include "base/fs.h"
#include "base/rfc3339.h"
#include "base/strings.h"
#include "cli/strata_commands.h"
#include "sandbox/record.h"
#include "sandbox/vm_bundle.h"

namespace strata::cli {

namespace {

using Json = nlohmann::json;

struct VmRecord {
  std::string id, name, created, kernel, dir;
  int pid = 0;
};

std::string vms_dir(const Globals& g) { return fs::join(g.root, "vms"); }
// The monitor: strata-vmm beside strata, or $STRATA_VMM (any monitor that takes Firecracker's
// --api-sock, --id and --config-file).
std::string vmm_exe(const Globals& g) {
  const char* env = std::getenv("STRATA_VMM");
  if (env != nullptr && *env != '\0') return env;
  return g.self_exe.substr(0, g.self_exe.rfind('/')) + "/strata-vmm";
}

Result<VmRecord> load_record(const std::string& dir) {
  ASSIGN_OR_RETURN(auto text, fs::read_file(fs::join(dir, "vm.json")));
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded()) return Error(dir + "/vm.json is not JSON");
  VmRecord r;
  r.id = j.value("id", "");
  r.name = j.value("name", "");
  r.created = j.value("created", "");
  r.kernel = j.value("kernel", "");
  r.pid = j.value("pid", 0);
  r.dir = dir;
  return r;
}

Status save_record(const VmRecord& r) {
  Json j = {{"id", r.id}, {"name", r.name}, {"created", r.created}, {"kernel", r.kernel}, {"pid", r.pid}};
  return fs::write_file_atomic(fs::join(r.dir, "vm.json"), j.dump(1) + "\n");
}

std::vector<VmRecord> all_records(const Globals& g) {
  std::vector<VmRecord> out;
  for (const auto& e : fs::list_dir(vms_dir(g))) {
    if (auto r = load_record(fs::join(vms_dir(g), e))) out.push_back(*r);
  }
  return out;
}

// By full id, unique id prefix or name.
Result<VmRecord> find_vm(const Globals& g, const std::string& key) {
  std::vector<VmRecord> hits;
  for (auto& r : all_records(g)) {
    if (r.name == key || r.id == key) return r;
    if (r.id.compare(0, key.size(), key) == 0) hits.push_back(r);
  }
  if (hits.size() == 1) return hits[0];
  if (hits.empty()) return Error("no such VM: " + key);
  return Error("VM id prefix " + key + " is ambiguous");
}

bool alive(int pid) { return pid > 0 && ::kill(pid, 0) == 0; }

// The largest answer taken from a VM's API (Firecracker's are a few KiB).
constexpr size_t kMaxApiResponse = 1 << 20;

// One HTTP/1.1 request on the VM's API socket; returns (status, body).
Result<std::pair<int, std::string>> api(const std::string& sock, const std::string& method, const std::string& path,
                                        const std::string& body = "") {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::sys("socket");
  struct sockaddr_un a {};
  a.sun_family = AF_UNIX;
  // A deep --root can make the path longer than sun_path: reach it through a directory fd.
  std::string addr = sock;
  UniqueFd dirfd;
  if (addr.size() >= sizeof a.sun_path) {
    std::string dir = sock.substr(0, sock.rfind('/'));
    dirfd.reset(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!dirfd) return Error::sys("open " + dir);
    addr = "/proc/self/fd/" + std::to_string(dirfd.get()) + sock.substr(sock.rfind('/'));
  }
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", addr.c_str());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return Error::sys("connect to " + sock);
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
                    "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
    return Error::sys("send to " + sock);
  std::string resp;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
    size_t hdr_end = resp.find("\r\n\r\n");
    if (hdr_end != std::string::npos) {
      size_t cl = resp.find("Content-Length: ");
      // (std::stoul threw on a bad or huge length, ending strata with an uncaught exception.)
      auto len = cl != std::string::npos && cl < hdr_end
                     ? str::parse_uint(resp.substr(cl + 16, resp.find("\r\n", cl) - cl - 16))
                     : std::optional<uint64_t>(0);
      if (!len || *len > kMaxApiResponse) return Error("a bad Content-Length from " + sock);
      if (resp.size() >= hdr_end + 4 + *len) break;
    }
    if (resp.size() > kMaxApiResponse) return Error("an answer larger than 1 MiB from " + sock);
  }
  if (resp.compare(0, 9, "HTTP/1.1 ") != 0) return Error("no HTTP answer from " + sock);
  int status = std::atoi(resp.c_str() + 9);
  size_t hdr_end = resp.find("\r\n\r\n");
  return std::make_pair(status, hdr_end == std::string::npos ? std::string() : resp.substr(hdr_end + 4));
}

// An API call that must succeed (2xx); the error carries Firecracker's fault_message.
Status api_ok(const std::string& sock, const std::string& method, const std::string& path, const std::string& body = "") {
  ASSIGN_OR_RETURN(auto r, api(sock, method, path, body));
  if (r.first / 100 == 2) return ok();
  Json j = Json::parse(r.second, nullptr, false);
  std::string msg = j.is_object() ? j.value("fault_message", r.second) : r.second;
  return Error(method + " " + path + ": " + msg);
}

// A detached VM's outcome: <vm dir>/exit holds "N" (and the reason when there is no report).
std::optional<int> recorded_exit(const VmRecord& r) {
  auto text = fs::read_file(fs::join(r.dir, "exit"));
  if (!text || text->empty() || !std::isdigit(static_cast<unsigned char>((*text)[0]))) return std::nullopt;
  return std::atoi(text->c_str());
}

std::string state_of(const VmRecord& r) {
  if (!alive(r.pid)) {
    auto code = recorded_exit(r);
    return code ? "Exited (" + std::to_string(*code) + ")" : "Exited";
  }
  auto a = api(fs::join(r.dir, "api.sock"), "GET", "/");
  if (!a || a->first != 200) return "Unknown";
  Json j = Json::parse(a->second, nullptr, false);
  return j.is_object() ? j.value("state", "Unknown") : "Unknown";
}

bool wait_for_socket(const std::string& sock, int pid, int ms) {
  for (int i = 0; i < ms / 10; ++i) {
    if (fs::exists(sock)) return true;
    if (pid > 0 && ::waitpid(pid, nullptr, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Spawns strata-vmm for the VM in r.dir; detached: in its own session, console to console.log.
// out_fd >= 0: the monitor's stdout (the guest's console) goes there.
Result<int> spawn_vmm(const Globals& g, const VmRecord& r, const std::vector<std::string>& extra, bool detach,
                      int out_fd = -1) {
  // The monitor runs in the VM's directory with a relative socket path: unix socket paths are
  // limited to 107 bytes and a --root can be deep.
  std::vector<std::string> argv = {vmm_exe(g), "--api-sock", "api.sock", "--id", r.name};
  argv.insert(argv.end(), extra.begin(), extra.end());
  pid_t pid = ::fork();
  if (pid < 0) return Error::sys("fork");
  if (pid == 0) {
    if (::chdir(r.dir.c_str()) != 0) ::_exit(127);
    if (out_fd >= 0) ::dup2(out_fd, 1);
    if (detach) {
      ::setsid();
      int null = ::open("/dev/null", O_RDONLY);
      int log = ::open(fs::join(r.dir, "console.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (null >= 0) ::dup2(null, 0);
      if (log >= 0) {
        ::dup2(log, 1);
        ::dup2(log, 2);
      }
    }
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    std::fprintf(stderr, "strata: exec %s: %s\n", a[0], std::strerror(errno));
    ::_exit(127);
  }
  return pid;
}

Result<VmRecord> new_record(const Globals& g, const std::string& name, const std::string& kernel) {
  VmRecord r;
  r.id = sandbox::new_container_id();
  r.name = name.empty() ? r.id.substr(0, 12) : name;
  for (const auto& o : all_records(g)) {
    if (o.name == r.name) return Error("the name " + r.name + " is in use by VM " + o.id.substr(0, 12));
  }
  r.created = now_rfc3339();
  r.kernel = kernel;
  r.dir = fs::join(vms_dir(g), r.id.substr(0, 12));  // short: socket paths live under it
  TRY(fs::mkdir_p(r.dir, 0700));
  return r;
}

// Foreground: waits for the monitor, then removes the VM's directory; returns its exit code.
int wait_foreground(VmRecord& r, int pid) {
  // Ctrl-C reaches the monitor too (same process group); we only wait.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGTERM, SIG_IGN);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  (void)fs::remove_tree(r.dir);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

struct RunFlags {
  bool detach = false;
  bool mem_given = false;
  std::string name, kernel, initrd, cmdline, net, vsock_cid, bundle;
  std::vector<std::string> disks;
  uint64_t mem = 128;
  uint32_t vcpus = 1;
};

// What every VM of `strata vm run` has: machine-config, the --disk drives, --net, entropy.
Json base_config(const RunFlags& f, uint64_t mem_mib) {
  Json cfg;
  cfg["machine-config"] = {{"vcpu_count", f.vcpus}, {"mem_size_mib", mem_mib}};
  Json drives = Json::array();
  for (size_t i = 0; i < f.disks.size(); ++i) {
    std::string path = f.disks[i];
    bool ro = path.size() > 3 && path.compare(path.size() - 3, 3, ":ro") == 0;
    if (ro) path.resize(path.size() - 3);
    drives.push_back({{"drive_id", "drive" + std::to_string(i)}, {"path_on_host", fs::absolute(path)},
                      {"is_root_device", false}, {"is_read_only", ro}, {"cache_type", "Writeback"}});
  }
  cfg["drives"] = drives;
  if (!f.net.empty()) cfg["network-interfaces"] = Json::array({{{"iface_id", "eth0"}, {"host_dev_name", f.net}}});
  cfg["entropy"] = Json::object();
  return cfg;
}

Result<uint32_t> parse_cid(const std::string& text) {
  auto v = str::parse_uint(text);
  if (!v || *v < 3 || *v > 0xfffffffeULL) return Error("--vsock " + text + ": a guest CID is a number from 3 up");
  return static_cast<uint32_t>(*v);
}

int cmd_run_bundle(Globals& g, const RunFlags& f);

int cmd_run(Globals& g, const RunFlags& f) {
  if (!f.bundle.empty()) return cmd_run_bundle(g, f);
  if (f.kernel.empty()) return fail(Error("--kernel or --bundle is required"));
  Json cfg = base_config(f, f.mem);
  cfg["boot-source"] = {{"kernel_image_path", fs::absolute(f.kernel)}};
  if (!f.initrd.empty()) cfg["boot-source"]["initrd_path"] = fs::absolute(f.initrd);
  // Without --cmdline, strata-vmm's default command line (kDefaultCmdline) applies.
  if (!f.cmdline.empty()) cfg["boot-source"]["boot_args"] = f.cmdline;
  if (!f.vsock_cid.empty()) {
    auto cid = parse_cid(f.vsock_cid);
    if (!cid) return fail(cid.error());
    // Relative: the monitor runs in the VM's directory.
    cfg["vsock"] = {{"guest_cid", *cid}, {"uds_path", "vsock.sock"}};
  }
  auto r = new_record(g, f.name, fs::absolute(f.kernel));
  if (!r) return fail(r.error());
  if (auto st = fs::write_file_atomic(fs::join(r->dir, "config.json"), cfg.dump(1) + "\n"); !st) {
    (void)fs::remove_tree(r->dir);
    return fail(st.error());
  }
  auto pid = spawn_vmm(g, *r, {"--config-file", fs::join(r->dir, "config.json")}, f.detach);
  if (!pid) {
    (void)fs::remove_tree(r->dir);
    return fail(pid.error());
  }
  r->pid = *pid;
  (void)save_record(*r);
  if (!f.detach) return wait_foreground(*r, *pid);
  if (!wait_for_socket(fs::join(r->dir, "api.sock"), *pid, 5000)) {
    auto log = fs::read_file(fs::join(r->dir, "console.log"));
    (void)fs::remove_tree(r->dir);
    return fail(Error("VM did not start" + (log ? ": " + *log : std::string())));
  }
  std::printf("%s\n", r->id.c_str());
  return 0;
}

// A unix socket listening at dir/name (through the directory's fd: the path may be longer
// than sun_path).
Result<UniqueFd> listen_in(const std::string& dir, const std::string& name) {
  UniqueFd dirfd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dirfd) return Error::sys("open " + dir);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::sys("socket");
  struct sockaddr_un a {};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "/proc/self/fd/%d/%s", dirfd.get(), name.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return Error::sys("bind " + dir + "/" + name);
  if (::listen(fd.get(), 4) != 0) return Error::sys("listen on " + dir + "/" + name);
  return fd;
}

// Relays the monitor's console (console_r) to out_fd until the monitor is gone, collecting
// strata-init's report from the vsock listener or from the console; waits for the monitor.
// Returns the workload's exit code, or the error that says why there is none.
struct RelayResult {
  int code = 0;
  std::string error;  // set: no report (code is then 125, or 128+S when the monitor was killed)
  std::string init_step;  // strata-init failed at this step (code 125 or 127)
};
RelayResult relay_until_exit(const VmRecord& r, int pid, int console_r, int listener, int out_fd) {
  std::optional<sandbox::InitReport> from_vsock, from_console;
  std::string line, report_buf;
  UniqueFd conn;
  for (;;) {
    struct pollfd p[3] = {{console_r, POLLIN, 0}, {listener, POLLIN, 0}, {conn.get(), POLLIN, 0}};
    if (::poll(p, conn ? 3 : 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents & POLLIN) {
      UniqueFd c(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (c && !conn) conn = std::move(c);  // one report per VM: init connects once
    }
    if (conn && (p[2].revents & (POLLIN | POLLHUP | POLLERR))) {
      char buf[256];
      ssize_t n = ::read(conn.get(), buf, sizeof buf);
      if (n > 0 && report_buf.size() < 256) report_buf.append(buf, static_cast<size_t>(n));
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        from_vsock = sandbox::parse_init_report(report_buf);
        conn.reset();
      }
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[4096];
      ssize_t n = ::read(console_r, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // the monitor is gone (or closed its console)
      (void)!::write(out_fd, buf, static_cast<size_t>(n));
      for (ssize_t i = 0; i < n; ++i) {
        if (buf[i] != '\n') {
          if (line.size() < 256) line += buf[i];
          continue;
        }
        if (line.rfind("strata-init: ", 0) == 0) {
          if (auto rep = sandbox::parse_init_report(std::string_view(line).substr(13))) from_console = rep;
        }
        line.clear();
      }
    }
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  auto report = from_vsock ? from_vsock : from_console;
  if (report) return {report->code, "", report->error_step};
  if (WIFSIGNALED(st)) {
    return {128 + WTERMSIG(st), "VM " + r.name + ": strata-vmm was killed by signal " + std::to_string(WTERMSIG(st)), ""};
  }
  if (WEXITSTATUS(st) == 0) {
    return {125, "VM " + r.name + " powered off without its workload's exit status (no report from " +
                     "strata-init, on vsock or the console: does the kernel run strata-init from the initramfs?)", ""};
  }
  return {125, "VM " + r.name + " ended before its workload reported an exit status (strata-vmm exit status " +
                   std::to_string(WEXITSTATUS(st)) + ", its message is above)", ""};
}

// strata vm run --bundle DIR: the bundle's process as the VM's workload (sandbox/vm_bundle.h);
// the exit status comes from strata-init over vsock (port 1024 on <vm dir>/vsock.sock), or
// from its "strata-init: exit N" console line when the vsock report did not arrive. With -d a
// watcher process (this one, forked, in its own session) does the relaying into console.log
// and writes <vm dir>/exit; `strata vm ls` shows it and `strata vm logs` the console.
int cmd_run_bundle(Globals& g, const RunFlags& f) {
  if (!f.initrd.empty()) return fail(Error("--initrd cannot be used with --bundle: the initramfs holds strata-init"));
  uint32_t cid = 3;
  if (!f.vsock_cid.empty()) {
    auto c = parse_cid(f.vsock_cid);
    if (!c) return fail(c.error());
    cid = *c;
  }
  std::string bundle = fs::absolute(f.bundle);
  auto r = new_record(g, f.name, "bundle " + bundle);
  if (!r) return fail(r.error());
  Cleanup remove_dir([&] { (void)fs::remove_tree(r->dir); });
  std::string bin_dir = g.self_exe.substr(0, g.self_exe.rfind('/'));
  auto boot = sandbox::prepare_bundle({bundle, f.kernel, bin_dir + "/strata-init", fs::join(g.root, "vm-cache"),
                                       r->dir, f.cmdline});
  if (!boot) return fail(boot.error());
  Json cfg = base_config(f, f.mem_given ? f.mem : boot->mem_mib.value_or(f.mem));
  cfg["boot-source"] = {
      {"kernel_image_path", boot->kernel}, {"initrd_path", boot->initrd}, {"boot_args", boot->boot_args}};
  // The root disk first: it is /dev/vda (strata.root=/dev/vda); the kernel itself mounts
  // nothing (strata-init in the initramfs does).
  cfg["drives"].insert(cfg["drives"].begin(), Json{{"drive_id", "rootfs"},
                                                   {"path_on_host", boot->root_image},
                                                   {"is_root_device", false},
                                                   {"is_read_only", boot->root_readonly},
                                                   {"cache_type", "Writeback"}});
  cfg["vsock"] = {{"guest_cid", cid}, {"uds_path", "vsock.sock"}};
  if (auto st = fs::write_file_atomic(fs::join(r->dir, "config.json"), cfg.dump(1) + "\n"); !st) {
    return fail(st.error());
  }
  auto listener = listen_in(r->dir, "vsock.sock_1024");
  if (!listener) return fail(listener.error());
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return fail(Error::sys("pipe"));
  UniqueFd console_r(pipefd[0]), console_w(pipefd[1]);

  if (f.detach) {
    UniqueFd log(::open(fs::join(r->dir, "console.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!log) return fail(Error::sys("create " + r->dir + "/console.log"));
    if (::pipe2(pipefd, O_CLOEXEC) != 0) return fail(Error::sys("pipe"));
    UniqueFd ready_r(pipefd[0]), ready_w(pipefd[1]);
    pid_t watcher = ::fork();
    if (watcher < 0) return fail(Error::sys("fork the VM's watcher"));
    if (watcher == 0) {
      remove_dir.cancel();
      ready_r.reset();
      ::setsid();
      int null = ::open("/dev/null", O_RDWR);
      if (null >= 0) {
        ::dup2(null, 0);
        ::dup2(null, 1);
      }
      ::dup2(log.get(), 2);  // the monitor's own messages land in console.log too
      ::signal(SIGINT, SIG_IGN);
      ::signal(SIGHUP, SIG_IGN);
      auto pid = spawn_vmm(g, *r, {"--config-file", fs::join(r->dir, "config.json")}, false, console_w.get());
      console_w.reset();
      std::string exit_text;
      if (pid) {
        r->pid = *pid;
        (void)save_record(*r);
        (void)!::write(ready_w.get(), "K", 1);
        ready_w.reset();
        RelayResult res = relay_until_exit(*r, *pid, console_r.get(), listener->get(), log.get());
        exit_text = std::to_string(res.code) + "\n" + res.error + (res.init_step.empty() ? "" : "strata-init failed at step " + res.init_step);
      } else {
        std::string msg = pid.error().to_string();
        (void)!::write(ready_w.get(), msg.data(), msg.size());
        ::_exit(125);
      }
      (void)fs::write_file_atomic(fs::join(r->dir, "exit"), exit_text + "\n");
      ::_exit(0);
    }
    ready_w.reset();
    console_w.reset();
    std::string msg;
    char buf[512];
    for (ssize_t n; (n = ::read(ready_r.get(), buf, sizeof buf)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      msg.append(buf, static_cast<size_t>(n));
    }
    if (msg != "K") {
      ::waitpid(watcher, nullptr, 0);
      return fail(Error("VM " + r->name + " did not start" + (msg.empty() ? "" : ": " + msg)));
    }
    remove_dir.cancel();
    std::printf("%s\n", r->id.c_str());
    return 0;
  }

  auto pid = spawn_vmm(g, *r, {"--config-file", fs::join(r->dir, "config.json")}, false, console_w.get());
  if (!pid) return fail(pid.error());
  console_w.reset();
  r->pid = *pid;
  (void)save_record(*r);
  // Ctrl-C reaches the monitor too (same process group); we relay and wait.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGTERM, SIG_IGN);
  RelayResult res = relay_until_exit(*r, *pid, console_r.get(), listener->get(), 1);
  if (!res.init_step.empty()) {
    std::fprintf(stderr, "strata: VM %s: strata-init failed at step \"%s\" (its console line above says why)\n",
                 r->name.c_str(), res.init_step.c_str());
  }
  if (!res.error.empty()) {
    if (res.code == 125) return fail(Error(res.error));
    std::fprintf(stderr, "strata: %s\n", res.error.c_str());
  }
  return res.code;
}

int cmd_ls(Globals& g, bool quiet, bool json) {
  auto recs = all_records(g);
  if (json) {
    Json out = Json::array();
    for (const auto& r : recs) {
      out.push_back({{"Id", r.id}, {"Name", r.name}, {"State", state_of(r)}, {"Pid", alive(r.pid) ? r.pid : 0},
                     {"Kernel", r.kernel}, {"Created", r.created}});
    }
    std::printf("%s\n", out.dump(4).c_str());
    return 0;
  }
  if (!quiet) std::printf("%-14s %-20s %-12s %-8s %s\n", "VM ID", "NAME", "STATE", "PID", "KERNEL");
  for (const auto& r : recs) {
    if (quiet) {
      std::printf("%s\n", r.id.substr(0, 12).c_str());
      continue;
    }
    std::printf("%-14s %-20s %-12s %-8d %s\n", r.id.substr(0, 12).c_str(), r.name.c_str(), state_of(r).c_str(),
                alive(r.pid) ? r.pid : 0, r.kernel.c_str());
  }
  return 0;
}

Status stop_vm(const VmRecord& r, int timeout_s) {
  if (!alive(r.pid)) return ok();
  ::kill(r.pid, SIGTERM);
  for (int i = 0; i < timeout_s * 100 && alive(r.pid); ++i) {
    ::waitpid(r.pid, nullptr, WNOHANG);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (alive(r.pid)) ::kill(r.pid, SIGKILL);
  return ok();
}

int with_vm(Globals& g, const std::string& key, const std::function<Status(const VmRecord&)>& fn) {
  auto r = find_vm(g, key);
  if (!r) return fail(r.error());
  if (auto st = fn(*r); !st) return fail(std::move(st.error()).context("VM " + r->name));
  return 0;
}

// with_vm for each of `keys` (stop, rm, pause, resume take several): a failure on one is
// reported and the others still run; the exit code says something failed.
void each_vm(Globals& g, const std::vector<std::string>& keys, const std::function<Status(const VmRecord&)>& fn) {
  for (const auto& key : keys) {
    if (int rc = with_vm(g, key, fn); rc != 0) g.exit_code = rc;
  }
}

}  // namespace

void add_vm_commands(CLI::App& app, Globals& g) {
  CLI::App* vm = app.add_subcommand("vm", "Manage micro-VMs (strata-vmm, Firecracker's API)");
  vm->require_subcommand(1);

  auto rf = std::make_shared<RunFlags>();
  CLI::App* run = vm->add_subcommand("run", "Boot a micro-VM (foreground unless -d)");
  run->add_flag("-d,--detach", rf->detach, "Run in the background and print the VM id");
  run->add_option("--name", rf->name, "Name of the VM");
  run->add_option("--kernel", rf->kernel,
                  "Kernel: a bzImage or an ELF with a PVH entry (with --bundle: default the guest kernel "
                  "guest/kernel/build.sh built)");
  run->add_option("--bundle", rf->bundle,
                  "Run this OCI bundle (config.json + rootfs) as the VM's workload and return its exit code");
  run->add_option("--initrd", rf->initrd, "Initial ramdisk");
  run->add_option("--disk", rf->disks, "virtio-blk disk IMG[:ro] (repeatable)");
  CLI::Option* mem = run->add_option("--mem", rf->mem, "Memory in MiB (--bundle: default its memory limit)");
  mem->capture_default_str();
  run->add_option("--vcpus", rf->vcpus, "vCPUs")->capture_default_str();
  run->add_option("--net", rf->net, "Attach virtio-net to this existing tap device");
  run->add_option("--vsock", rf->vsock_cid, "virtio-vsock with this guest CID (socket: <vm dir>/vsock.sock)");
  run->add_option("--cmdline", rf->cmdline, "Kernel command line");
  run->callback([&g, rf, mem] {
    rf->mem_given = mem->count() > 0;
    g.exit_code = cmd_run(g, *rf);
  });

  auto quiet = std::make_shared<bool>(false);
  auto fmt = std::make_shared<std::string>();
  CLI::App* ls = vm->add_subcommand("ls", "List micro-VMs");
  ls->alias("ps");
  ls->add_flag("-q,--quiet", *quiet, "Only ids");
  ls->add_option("--format", *fmt, "json");
  ls->callback([&g, quiet, fmt] { g.exit_code = cmd_ls(g, *quiet, *fmt == "json"); });

  auto logs_vm = std::make_shared<std::string>();
  CLI::App* logs = vm->add_subcommand("logs", "Print a detached micro-VM's console (console.log)");
  logs->add_option("VM", *logs_vm, "VM id or name")->required();
  logs->callback([&g, logs_vm] {
    g.exit_code = with_vm(g, *logs_vm, [&](const VmRecord& r) -> Status {
      auto text = fs::read_file(fs::join(r.dir, "console.log"));
      if (!text) return Error("no console log (a foreground VM's console went to its terminal)");
      std::fwrite(text->data(), 1, text->size(), stdout);
      return ok();
    });
  });

  auto ids = std::make_shared<std::vector<std::string>>();
  auto timeout = std::make_shared<int>(10);
  CLI::App* stop = vm->add_subcommand("stop", "Stop micro-VMs (SIGTERM to the monitor, SIGKILL after -t seconds)");
  stop->add_option("-t,--time", *timeout, "Seconds to wait")->capture_default_str();
  stop->add_option("VM", *ids, "VM ids or names")->required();
  stop->callback([&g, ids, timeout] { each_vm(g, *ids, [&](const VmRecord& r) { return stop_vm(r, *timeout); }); });

  auto force = std::make_shared<bool>(false);
  auto rm_ids = std::make_shared<std::vector<std::string>>();
  CLI::App* rm = vm->add_subcommand("rm", "Remove stopped micro-VMs (-f: stop them first)");
  rm->add_flag("-f,--force", *force, "Stop running VMs first");
  rm->add_option("VM", *rm_ids, "VM ids or names")->required();
  rm->callback([&g, rm_ids, force] {
    each_vm(g, *rm_ids, [&](const VmRecord& r) -> Status {
      if (alive(r.pid)) {
        if (!*force) return Error("it is running: stop it first or use -f");
        TRY(stop_vm(r, 10));
      }
      return fs::remove_tree(r.dir);
    });
  });

  for (auto [verb, state, help] : {std::tuple{"pause", "Paused", "Pause micro-VMs"},
                                   std::tuple{"resume", "Resumed", "Resume paused micro-VMs"}}) {
    auto vids = std::make_shared<std::vector<std::string>>();
    CLI::App* c = vm->add_subcommand(verb, help);
    c->add_option("VM", *vids, "VM ids or names")->required();
    std::string st = state;
    c->callback([&g, vids, st] {
      each_vm(g, *vids, [&](const VmRecord& r) {
        return api_ok(fs::join(r.dir, "api.sock"), "PATCH", "/vm", Json{{"state", st}}.dump());
      });
    });
  }

  auto snap_vm = std::make_shared<std::string>();
  auto snap_dir = std::make_shared<std::string>();
  CLI::App* snap = vm->add_subcommand("snapshot", "Snapshot a running micro-VM into DIR (vm.snap, vm.mem)");
  snap->add_option("VM", *snap_vm, "VM id or name")->required();
  snap->add_option("DIR", *snap_dir, "Directory for the snapshot (created)")->required();
  snap->callback([&g, snap_vm, snap_dir] {
    g.exit_code = with_vm(g, *snap_vm, [&](const VmRecord& r) -> Status {
      std::string dir = fs::absolute(*snap_dir);
      TRY(fs::mkdir_p(dir, 0700));
      std::string sock = fs::join(r.dir, "api.sock");
      bool was_paused = state_of(r) == "Paused";
      TRY(api_ok(sock, "PATCH", "/vm", R"({"state": "Paused"})"));
      Status st = api_ok(sock, "PUT", "/snapshot/create",
                         Json{{"snapshot_type", "Full"}, {"snapshot_path", fs::join(dir, "vm.snap")},
                              {"mem_file_path", fs::join(dir, "vm.mem")}}
                             .dump());
      if (!was_paused) TRY(api_ok(sock, "PATCH", "/vm", R"({"state": "Resumed"})"));
      if (st) std::printf("%s\n", dir.c_str());
      return st;
    });
  });

  auto rs_dir = std::make_shared<std::string>();
  auto rs_name = std::make_shared<std::string>();
  auto rs_detach = std::make_shared<bool>(false);
  CLI::App* restore = vm->add_subcommand("restore", "Start a micro-VM from a snapshot directory");
  restore->add_option("DIR", *rs_dir, "Snapshot directory (from strata vm snapshot)")->required();
  restore->add_option("--name", *rs_name, "Name of the new VM");
  restore->add_flag("-d,--detach", *rs_detach, "Run in the background and print the VM id");
  restore->callback([&g, rs_dir, rs_name, rs_detach] {
    std::string dir = fs::absolute(*rs_dir);
    if (!fs::exists(fs::join(dir, "vm.snap"))) {
      g.exit_code = fail(Error("no snapshot in " + dir + " (vm.snap missing)"));
      return;
    }
    auto r = new_record(g, *rs_name, "snapshot " + dir);
    if (!r) {
      g.exit_code = fail(r.error());
      return;
    }
    auto pid = spawn_vmm(g, *r, {}, *rs_detach);
    Status st = pid ? ok() : Status(pid.error());
    if (st && !wait_for_socket(fs::join(r->dir, "api.sock"), *pid, 5000)) st = Error("strata-vmm did not start");
    if (st) {
      st = api_ok(fs::join(r->dir, "api.sock"), "PUT", "/snapshot/load",
                  Json{{"snapshot_path", fs::join(dir, "vm.snap")},
                       {"mem_backend", {{"backend_type", "File"}, {"backend_path", fs::join(dir, "vm.mem")}}},
                       {"resume_vm", true}}
                      .dump());
    }
    if (!st) {
      if (pid) {
        ::kill(*pid, SIGTERM);
        ::waitpid(*pid, nullptr, 0);
      }
      (void)fs::remove_tree(r->dir);
      g.exit_code = fail(std::move(st.error()).context("restore " + dir));
      return;
    }
    r->pid = *pid;
    (void)save_record(*r);
    if (*rs_detach) {
      std::printf("%s\n", r->id.c_str());
      return;
    }
    g.exit_code = wait_foreground(*r, *pid);
  });
}

}  // namespace strata::cli
