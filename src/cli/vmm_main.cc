// strata-vmm: one micro-VM per process, with Firecracker's command line and REST API so that
// Firecracker clients drive it unchanged:
//   strata-vmm --api-sock /tmp/fc.sock                 # configure and start over the API
//   strata-vmm --config-file vm.json [--no-api]        # Firecracker's config-file layout
// and, a strata extension for scripts and benchmarks, a VM straight from flags:
//   strata-vmm --kernel K [--initrd I] [--cmdline ...] [--mem MiB] [--vcpus N] [--disk IMG[:ro]] [--rng]
// The serial console is stdout/stdin, or with `--console pty` a new pseudo-terminal whose path
// is printed on stderr ("strata-vmm: console on /dev/pts/N"; attach with screen, minicom or
// cat), or with `--console FILE` a file it is appended to; PUT /serial
// (Firecracker's serial_out_path) redirects the output of one VM likewise.
//
// Exit status: 0 when the guest powered off or asked for a reset (as Firecracker), 3 triple
// fault, 4 KVM internal error (e.g. an instruction KVM cannot emulate), 5 failed VM entry,
// 1 a host-side error, 152 bad configuration (Firecracker's BadConfiguration), 153 bad
// arguments.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <thread>

#include "base/fs.h"
#include "vmm/api/http_server.h"
#include "vmm/api/router.h"
#include "vmm/host_files.h"
#include "vmm/logger.h"
#include "vmm/monitor.h"

namespace {

using namespace strata::vmm;

int fail(int code, const std::string& msg) {
  std::fprintf(stderr, "strata-vmm: %s\n", msg.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"strata-vmm: a KVM micro-VM monitor with Firecracker's API", "strata-vmm"};
  std::string api_sock = "/run/firecracker.socket", config_file, id = "anonymous-instance", log_path, level,
              metrics_path;
  std::string kernel, initrd, cmdline = kDefaultCmdline, console = "stdout";
  uint64_t mem_mib = 128, max_payload = 51200;
  uint32_t vcpus = 1;
  bool no_api = false, rng = false, boot_timer = false, show_level = false, show_origin = false;
  std::vector<std::string> disks;
  app.add_option("--api-sock", api_sock, "unix socket of the API")->capture_default_str();
  app.add_option("--config-file", config_file, "start from a Firecracker JSON configuration");
  app.add_flag("--no-api", no_api, "do not serve the API (needs --config-file or --kernel)");
  app.add_option("--id", id, "instance id shown by GET /")->capture_default_str();
  app.add_option("--log-path", log_path, "log file");
  app.add_option("--level", level, "log level (Error, Warning, Info, Debug)");
  app.add_flag("--show-level", show_level, "accepted for Firecracker compatibility");
  app.add_flag("--show-log-origin", show_origin, "accepted for Firecracker compatibility");
  app.add_option("--metrics-path", metrics_path, "metrics file");
  app.add_flag("--boot-timer", boot_timer, "accepted for Firecracker compatibility");
  app.add_option("--http-api-max-payload-size", max_payload, "largest API request body")->capture_default_str();
  app.add_option("--kernel", kernel, "boot this kernel now (bzImage or ELF with a PVH entry); implies --no-api");
  app.add_option("--initrd", initrd, "initial ramdisk (with --kernel)");
  app.add_option("--cmdline", cmdline, "kernel command line (with --kernel)")->capture_default_str();
  app.add_option("--mem", mem_mib, "guest memory in MiB (with --kernel)")->capture_default_str();
  app.add_option("--vcpus", vcpus, "number of vCPUs (with --kernel)")->capture_default_str();
  app.add_option("--disk", disks, "virtio-blk disk PATH[:ro], repeatable, ids drive0, drive1, ... (with --kernel)");
  app.add_flag("--rng", rng, "a virtio-rng device (with --kernel)");
  app.add_option("--console", console, "serial console: stdout, pty (a new pseudo-terminal) or a file to append to")
      ->capture_default_str();
  app.set_version_flag("--version", "strata-vmm 0.1.0 (Firecracker API 1.4)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 153;
  }

  // As PUT /logger: a FIFO (a jailer setup's usual log) opens without a reader, never blocks.
  bool debug = level == "Debug" || level == "debug" || level == "Trace" || level == "trace";
  if (auto st = configure_log(log_path, debug); !st) return fail(1, "--log-path: " + st.error().to_string());

  // SIGINT/SIGTERM end the VM cleanly (the API socket is removed): one thread waits for them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  int console_out = STDOUT_FILENO, console_in = STDIN_FILENO;
  strata::UniqueFd console_fd, console_slave;
  if (console == "pty") {
    // The guest's console on a pseudo-terminal: raw, so that its bytes pass as they are; writes
    // never block the vCPU (nothing attached: output is dropped once the buffer is full).
    console_fd.reset(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK));
    if (!console_fd || ::grantpt(console_fd.get()) != 0 || ::unlockpt(console_fd.get()) != 0)
      return fail(1, std::string("--console pty: cannot allocate a pseudo-terminal: ") + std::strerror(errno));
    const char* name = ::ptsname(console_fd.get());
    // Held open for the VM's life: with no slave open the master reads EIO and the console
    // input would be dropped from the event loop before anyone attached.
    console_slave.reset(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
    struct termios t {};
    if (console_slave && ::tcgetattr(console_slave.get(), &t) == 0) {
      ::cfmakeraw(&t);
      ::tcsetattr(console_slave.get(), TCSANOW, &t);
    }
    std::fprintf(stderr, "strata-vmm: console on %s\n", name);
    console_out = console_in = console_fd.get();
  } else if (console != "stdout") {
    auto out = open_output(console, "console file");  // as PUT /serial's serial_out_path
    if (!out) return fail(153, "--console: " + out.error().to_string());
    console_fd = std::move(*out);
    console_out = console_fd.get();
  }
  Monitor mon(console_out, console_in);
  api::InstanceInfo info;
  info.id = id;
  api::Router router(mon, info);
  if (!metrics_path.empty()) {
    if (auto st = mon.configure_metrics({metrics_path}); !st) return fail(152, st.error().to_string());
  }

  if (!kernel.empty()) {
    no_api = true;
    api::VmConfig c;
    c.boot_source = api::BootSource{kernel, initrd.empty() ? std::nullopt : std::optional<std::string>(initrd), cmdline};
    c.machine_config.vcpu_count = vcpus;
    c.machine_config.mem_size_mib = mem_mib;
    for (size_t i = 0; i < disks.size(); ++i) {
      api::Drive d;
      d.drive_id = "drive" + std::to_string(i);
      d.path_on_host = disks[i];
      d.cache_type = api::CacheType::kWriteback;  // flush reaches the disk (Firecracker's default is Unsafe)
      if (d.path_on_host.size() > 3 && d.path_on_host.compare(d.path_on_host.size() - 3, 3, ":ro") == 0) {
        d.path_on_host.resize(d.path_on_host.size() - 3);
        d.is_read_only = true;
      }
      c.drives.push_back(d);
    }
    if (rng) c.entropy = api::Entropy{};
    router.set_config(c);
    if (auto st = mon.start(c); !st) return fail(152, "start the microVM: " + st.error().to_string());
  } else if (!config_file.empty()) {
    // A regular file of at most fs::kReadLimit (16 MiB; a configuration is a few KiB): a FIFO
    // or /dev/zero is refused, never waited on or read without end.
    auto text = strata::fs::read_file(config_file, strata::fs::kReadLimit);
    if (!text) return fail(152, "read config file: " + text.error().to_string());
    auto c = api::parse_vm_config(*text);
    if (!c) return fail(152, "config file " + config_file + ": " + c.error().message());
    // Its logger and metrics sections take effect before the VM starts, as in Firecracker.
    if (c->logger) {
      if (auto st = mon.configure_logger(*c->logger); !st)
        return fail(152, "config file " + config_file + ": logger: " + st.error().to_string());
    }
    if (c->metrics) {
      if (auto st = mon.configure_metrics(*c->metrics); !st)
        return fail(152, "config file " + config_file + ": metrics: " + st.error().to_string());
    }
    if (c->boot_source) {
      if (auto st = mon.check_boot_source(*c->boot_source); !st) return fail(152, "config file " + config_file + ": " + st.error().to_string());
    }
    router.set_config(*c);
    if (auto st = mon.start(*c); !st) return fail(152, "start the microVM: " + st.error().to_string());
  } else if (no_api) {
    return fail(153, "--no-api needs --config-file (or --kernel)");
  }

  std::unique_ptr<api::ApiServer> server;
  if (!no_api) {
    api::ApiServerOptions opts;
    opts.max_body_bytes = max_payload;
    auto s = api::ApiServer::start(api_sock, router, opts);
    if (!s) return fail(1, "serve the API on " + api_sock + ": " + s.error().to_string());
    server = std::move(*s);
  }
  std::thread([&mon, sigs] {
    int sig = 0;
    sigwait(&sigs, &sig);
    mon.shutdown();
  }).detach();

  ExitReport r = mon.run_until_exit();
  if (server) server->stop();
  if (r.kind != ExitReport::kPowerOff || !r.detail.empty()) {
    std::fprintf(stderr, "strata-vmm: %s%s%s\n", r.name(), r.detail.empty() ? "" : ": ", r.detail.c_str());
  }
  return r.exit_code();
}
