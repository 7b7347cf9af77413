// Compiles linux.seccomp (OCI runtime-spec config-linux.md "Seccomp") to a classic BPF program
// with libseccomp in the parent, and loads the ready program in the child with seccomp(2)
// (seccomp(2), seccomp_rule_add(3), seccomp_export_bpf(3)). Every name in the profile
// (action, architecture, operator, flag) is checked here and refused by name; syscall names
// libseccomp does not know are skipped, as runc does.
#include "oci/seccomp.h"

#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>
#include <climits>
#include <memory>
#include <optional>
#include <string_view>

#include "base/fd.h"

namespace strata::oci {

namespace {

struct FilterRelease {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using FilterCtx = std::unique_ptr<void, FilterRelease>;

constexpr int kMaxSyscallArgs = 6;
// The kernel refuses a filter longer than BPF_MAXINSNS instructions with EINVAL; say so early.
constexpr size_t kMaxInstructions = 4096;

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

Error field_error(const std::string& field, std::string_view what) {
  return Error(field + ": " + std::string(what));
}

// The libseccomp action for an OCI action name. `field` names the action in errors and
// `errno_field` its errnoRet.
Result<uint32_t> resolve_action(const std::string& field, const std::string& errno_field,
                                std::string_view name, std::optional<uint32_t> errno_ret) {
  if (errno_ret) {
    if (name != "SCMP_ACT_ERRNO" && name != "SCMP_ACT_TRACE") {
      return field_error(errno_field,
                         "only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not " + std::string(name));
    }
    // The kernel passes 16 bits of SECCOMP_RET_DATA; a larger value would be silently cut.
    if (*errno_ret > 0xffff) return field_error(errno_field, "out of range (at most 65535)");
  }
  // runc's defaults: EPERM for SCMP_ACT_ERRNO and as the SCMP_ACT_TRACE message.
  uint32_t data = errno_ret.value_or(EPERM);
  if (name == "SCMP_ACT_ALLOW") return uint32_t{SCMP_ACT_ALLOW};
  if (name == "SCMP_ACT_ERRNO") return uint32_t{SCMP_ACT_ERRNO(data)};
  if (name == "SCMP_ACT_KILL" || name == "SCMP_ACT_KILL_THREAD") return uint32_t{SCMP_ACT_KILL_THREAD};
  if (name == "SCMP_ACT_KILL_PROCESS") return uint32_t{SCMP_ACT_KILL_PROCESS};
  if (name == "SCMP_ACT_TRAP") return uint32_t{SCMP_ACT_TRAP};
  if (name == "SCMP_ACT_TRACE") return uint32_t{SCMP_ACT_TRACE(data)};
  if (name == "SCMP_ACT_LOG") return uint32_t{SCMP_ACT_LOG};
  if (name == "SCMP_ACT_NOTIFY") {
    return field_error(field, "SCMP_ACT_NOTIFY is not supported (no seccomp notify agent support)");
  }
  return field_error(field, "unknown action " + quoted(name));
}

std::optional<scmp_compare> resolve_operator(std::string_view name) {
  if (name == "SCMP_CMP_NE") return SCMP_CMP_NE;
  if (name == "SCMP_CMP_LT") return SCMP_CMP_LT;
  if (name == "SCMP_CMP_LE") return SCMP_CMP_LE;
  if (name == "SCMP_CMP_EQ") return SCMP_CMP_EQ;
  if (name == "SCMP_CMP_GE") return SCMP_CMP_GE;
  if (name == "SCMP_CMP_GT") return SCMP_CMP_GT;
  if (name == "SCMP_CMP_MASKED_EQ") return SCMP_CMP_MASKED_EQ;
  return std::nullopt;
}

std::optional<unsigned int> resolve_flag(std::string_view name) {
  if (name == "SECCOMP_FILTER_FLAG_TSYNC") return SECCOMP_FILTER_FLAG_TSYNC;
  if (name == "SECCOMP_FILTER_FLAG_LOG") return SECCOMP_FILTER_FLAG_LOG;
  if (name == "SECCOMP_FILTER_FLAG_SPEC_ALLOW") return SECCOMP_FILTER_FLAG_SPEC_ALLOW;
  return std::nullopt;
}

// "SCMP_ARCH_X86_64" -> libseccomp's "x86_64" -> its token; 0 when unknown.
uint32_t resolve_arch(std::string_view name) {
  constexpr std::string_view kPrefix = "SCMP_ARCH_";
  if (name.substr(0, kPrefix.size()) != kPrefix || name.size() == kPrefix.size()) return 0;
  std::string lower(name.substr(kPrefix.size()));
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return seccomp_arch_resolve_name(lower.c_str());
}

// Adds one syscalls[] entry. The OCI args of one entry are ANDed, but libseccomp refuses two
// comparisons on the same argument in one rule (EINVAL). Profiles written for runc rely on
// runc's answer, which we keep: such an entry becomes one rule per comparison (an OR).
Status add_entry(scmp_filter_ctx ctx, const SeccompSyscall& sc, const std::string& field,
                 uint32_t default_action) {
  ASSIGN_OR_RETURN(uint32_t action,
                   resolve_action(field + ".action", field + ".errnoRet", sc.action, sc.errno_ret));

  if (sc.args.size() > kMaxSyscallArgs) {
    return field_error(field + ".args", "more than " + std::to_string(kMaxSyscallArgs) + " comparisons");
  }
  scmp_arg_cmp cmps[kMaxSyscallArgs] = {};
  bool seen[kMaxSyscallArgs] = {};
  bool repeated_index = false;
  for (size_t i = 0; i < sc.args.size(); ++i) {
    const SeccompArg& arg = sc.args[i];
    std::string arg_field = field + ".args[" + std::to_string(i) + "]";
    auto op = resolve_operator(arg.op);
    if (!op) return field_error(arg_field + ".op", "unknown operator " + quoted(arg.op));
    if (arg.index >= kMaxSyscallArgs) {
      return field_error(arg_field + ".index", "must be below " + std::to_string(kMaxSyscallArgs));
    }
    if (seen[arg.index]) repeated_index = true;
    seen[arg.index] = true;
    // SCMP_CMP_MASKED_EQ: datum_a is the mask, datum_b the value, as the OCI "value" and
    // "valueTwo" are; for the other operators valueTwo is unused.
    cmps[i] = scmp_arg_cmp{arg.index, *op, arg.value, arg.value_two};
  }

  // libseccomp refuses a rule whose action is the filter's default (EACCES); such a rule
  // changes nothing, so it is dropped rather than refused.
  if (action == default_action) return ok();

  for (size_t n = 0; n < sc.names.size(); ++n) {
    const std::string& name = sc.names[n];
    int nr = seccomp_syscall_resolve_name(name.c_str());
    // A syscall this libseccomp does not know: skipped, so that profiles naming newer
    // syscalls still load (runc does the same).
    if (nr == __NR_SCMP_ERROR) continue;
    std::string what = field + ".names[" + std::to_string(n) + "]: add rule for " + quoted(name);
    if (repeated_index) {
      for (size_t i = 0; i < sc.args.size(); ++i) {
        int rc = seccomp_rule_add_array(ctx, action, nr, 1, &cmps[i]);
        if (rc < 0) return Error::sys(what, -rc);
      }
    } else {
      int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned int>(sc.args.size()), cmps);
      if (rc < 0) return Error::sys(what, -rc);
    }
  }
  return ok();
}

// seccomp_export_bpf() writes to an fd; a memfd keeps the program off any filesystem.
Result<std::vector<sock_filter>> export_program(scmp_filter_ctx ctx) {
  UniqueFd fd(::memfd_create("strata-seccomp", MFD_CLOEXEC));
  if (!fd) return Error::sys("memfd_create for the seccomp program");
  int rc = seccomp_export_bpf(ctx, fd.get());
  if (rc < 0) return Error::sys("export the seccomp program", -rc);
  off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size < 0) return Error::sys("seek the seccomp program");
  if (size % sizeof(sock_filter) != 0) {
    return Error("export the seccomp program: " + std::to_string(size) +
                 " bytes is not a whole number of BPF instructions");
  }
  std::vector<sock_filter> filter(static_cast<size_t>(size) / sizeof(sock_filter));
  auto* out = reinterpret_cast<char*>(filter.data());
  size_t done = 0;
  while (done < static_cast<size_t>(size)) {
    ssize_t n = ::pread(fd.get(), out + done, static_cast<size_t>(size) - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::sys("read the seccomp program");
    if (n == 0) return Error("read the seccomp program: short read");
    done += static_cast<size_t>(n);
  }
  return filter;
}

}  // namespace

Result<SeccompProgram> compile_seccomp(const Seccomp& spec) {
  if (!spec.listener_path.empty()) {
    return field_error("linux.seccomp.listenerPath", "not supported (no seccomp notify agent support)");
  }
  ASSIGN_OR_RETURN(uint32_t default_action,
                   resolve_action("linux.seccomp.defaultAction", "linux.seccomp.defaultErrnoRet",
                                  spec.default_action, spec.default_errno_ret));

  SeccompProgram prog;
  for (size_t i = 0; i < spec.flags.size(); ++i) {
    auto flag = resolve_flag(spec.flags[i]);
    if (!flag) {
      return field_error("linux.seccomp.flags[" + std::to_string(i) + "]",
                         "unknown flag " + quoted(spec.flags[i]));
    }
    prog.flags |= *flag;
  }

  FilterCtx ctx(seccomp_init(default_action));
  if (!ctx) return Error("linux.seccomp.defaultAction: libseccomp refused " + spec.default_action);
  // no_new_privs is the runtime's decision (process.noNewPrivileges), made before loading;
  // the exported program does not carry it anyway, but keep libseccomp from assuming it.
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0);
  if (rc < 0) return Error::sys("seccomp: clear the no_new_privs attribute", -rc);

  // seccomp_init() already holds the native architecture; listing it again is EEXIST.
  for (size_t i = 0; i < spec.architectures.size(); ++i) {
    const std::string& name = spec.architectures[i];
    std::string field = "linux.seccomp.architectures[" + std::to_string(i) + "]";
    uint32_t arch = resolve_arch(name);
    if (arch == 0) return field_error(field, "unknown architecture " + quoted(name));
    rc = seccomp_arch_add(ctx.get(), arch);
    if (rc < 0 && rc != -EEXIST) return Error::sys(field + ": add architecture " + quoted(name), -rc);
  }

  for (size_t i = 0; i < spec.syscalls.size(); ++i) {
    TRY(add_entry(ctx.get(), spec.syscalls[i], "linux.seccomp.syscalls[" + std::to_string(i) + "]",
                  default_action));
  }

  ASSIGN_OR_RETURN(prog.filter, export_program(ctx.get()));
  if (prog.filter.size() > kMaxInstructions) {
    return Error("linux.seccomp: the compiled program has " + std::to_string(prog.filter.size()) +
                 " instructions, more than the kernel's limit of " + std::to_string(kMaxInstructions));
  }
  return prog;
}

int load_seccomp(const SeccompProgram& prog) {
  if (prog.empty()) return 0;  // nothing to install
  if (prog.filter.size() > USHRT_MAX) return -EINVAL;
  sock_fprog fprog{static_cast<unsigned short>(prog.filter.size()),
                   const_cast<sock_filter*>(prog.filter.data())};
  long rc = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, prog.flags, &fprog);
  if (rc < 0) return -errno;
  // With TSYNC, a positive result is the id of a thread that could not be synchronised.
  if (rc > 0) return -ESRCH;
  return 0;
}

}  // namespace strata::oci
