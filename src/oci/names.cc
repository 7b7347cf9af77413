// Name <-> number tables for signals, rlimits and capabilities (names.h). The names are the
// ones config.json and runc's command line use: runtime-spec config.md (process.rlimits,
// process.capabilities) and runc's `kill` signal argument.
#include "oci/names.h"

#include <linux/capability.h>
#include <sys/resource.h>

#include <array>
#include <csignal>
#include <string>

#include "base/fs.h"
#include "base/strings.h"

namespace strata::oci {
namespace {

struct NamedNumber {
  std::string_view name;
  int number;
};

// With the aliases kill(1) also takes (IOT, CLD, POLL).
constexpr NamedNumber kSignals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT},     {"ILL", SIGILL},   {"TRAP", SIGTRAP},
    {"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},       {"FPE", SIGFPE},   {"KILL", SIGKILL},
    {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},     {"USR2", SIGUSR2},     {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
    {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD},     {"CLD", SIGCHLD},  {"CONT", SIGCONT},
    {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU}, {"URG", SIGURG},
    {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},     {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
    {"IO", SIGIO},     {"POLL", SIGPOLL},     {"PWR", SIGPWR},       {"SYS", SIGSYS},
};

constexpr NamedNumber kRlimits[] = {
    {"RLIMIT_CPU", RLIMIT_CPU},           {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_DATA", RLIMIT_DATA},         {"RLIMIT_STACK", RLIMIT_STACK},
    {"RLIMIT_CORE", RLIMIT_CORE},         {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_NPROC", RLIMIT_NPROC},       {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},   {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},       {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},     {"RLIMIT_RTTIME", RLIMIT_RTTIME},
};

// Indexed by capability number (linux/capability.h); written out rather than taken from the
// header so that a build on old headers still knows every name a newer config may carry.
constexpr std::array<std::string_view, 41> kCapabilities = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};

static_assert(kCapabilities[CAP_SYS_ADMIN] == "CAP_SYS_ADMIN" && kCapabilities[CAP_MKNOD] == "CAP_MKNOD" &&
              kCapabilities[CAP_AUDIT_READ] == "CAP_AUDIT_READ");
#ifdef CAP_CHECKPOINT_RESTORE
static_assert(kCapabilities[CAP_CHECKPOINT_RESTORE] == "CAP_CHECKPOINT_RESTORE");
#endif

constexpr int kLastKnownCapability = static_cast<int>(kCapabilities.size()) - 1;

std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

// "RTMIN", "RTMIN+3", "RTMAX-2" (already upper-cased, SIG prefix removed).
std::optional<int> realtime_signal(std::string_view s) {
  int base;
  int sign;
  if (str::starts_with(s, "RTMIN")) {
    base = SIGRTMIN;
    sign = 1;
  } else if (str::starts_with(s, "RTMAX")) {
    base = SIGRTMAX;
    sign = -1;
  } else {
    return std::nullopt;
  }
  s.remove_prefix(5);
  if (s.empty()) return base;
  if (s.front() != (sign > 0 ? '+' : '-')) return std::nullopt;
  s.remove_prefix(1);
  // parse_uint takes "" and "+1" as invalid, which is what we want after the sign.
  if (s.empty() || s.front() < '0' || s.front() > '9') return std::nullopt;
  auto n = str::parse_uint(s);
  if (!n || *n > static_cast<uint64_t>(SIGRTMAX - SIGRTMIN)) return std::nullopt;
  return base + sign * static_cast<int>(*n);
}

}  // namespace

std::optional<int> signal_from_name(std::string_view s) {
  if (s.empty()) return std::nullopt;
  if (s.front() >= '0' && s.front() <= '9') {
    // Signal 0 only probes for existence; as a "signal to send" it is a mistake.
    auto n = str::parse_uint(s);
    if (!n || *n == 0 || *n > static_cast<uint64_t>(SIGRTMAX)) return std::nullopt;
    return static_cast<int>(*n);
  }
  std::string name = to_upper(s);
  std::string_view v = name;
  if (str::starts_with(v, "SIG")) v.remove_prefix(3);
  for (const auto& sig : kSignals)
    if (sig.name == v) return sig.number;
  return realtime_signal(v);
}

std::optional<int> rlimit_from_name(std::string_view s) {
  for (const auto& r : kRlimits)
    if (r.name == s) return r.number;
  return std::nullopt;
}

std::string_view rlimit_name(int resource) {
  for (const auto& r : kRlimits)
    if (r.number == resource) return r.name;
  return "";
}

std::optional<int> capability_from_name(std::string_view s) {
  for (int i = 0; i <= kLastKnownCapability; ++i)
    if (kCapabilities[static_cast<size_t>(i)] == s) return i;
  return std::nullopt;
}

std::string_view capability_name(int cap) {
  if (cap < 0 || cap > kLastKnownCapability) return "";
  return kCapabilities[static_cast<size_t>(cap)];
}

std::vector<std::string> all_capability_names() { return {kCapabilities.begin(), kCapabilities.end()}; }

int last_capability() {
  // The kernel's answer can change only across reboots; read it once per process.
  static const int last = [] {
    auto text = fs::read_file("/proc/sys/kernel/cap_last_cap");
    if (!text) return kLastKnownCapability;
    auto n = str::parse_int(str::trim(*text));
    if (!n || *n < 0 || *n > 63) return kLastKnownCapability;
    return static_cast<int>(*n);
  }();
  return last;
}

std::vector<std::string> default_capability_names() {
  return {"CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
          "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
          "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
          "CAP_KILL",    "CAP_AUDIT_WRITE"};
}

}  // namespace strata::oci
