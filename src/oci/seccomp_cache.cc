// A compiled-program cache for seccomp profiles. libseccomp takes milliseconds to compile a
// profile of a few hundred syscalls (callgrind and the --debug phase timer: the default
// profile of `strata run` was the largest single cost of starting a container), and most
// containers of a machine use the same profile. The program depends only on the profile, the
// libseccomp version and the native architecture, so it is compiled once per --root and
// loaded from a file afterwards.
//
// The file holds the exact profile text it was compiled from and is used only when that text
// matches byte for byte: the file name (a 64-bit FNV-1a of the text) is an index, never the
// proof, so a hash collision costs a recompile, not a wrong filter. The directory is 0700 and
// owned by whoever owns --root; whoever can write there can already run containers with any
// profile.
#include <fcntl.h>
#include <seccomp.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstring>

#include "base/fs.h"
#include "oci/seccomp.h"

namespace strata::oci {

namespace {

constexpr std::string_view kMagic = "strata-seccomp-cache 1\n";

// Everything the compiled program depends on, as text.
std::string profile_key(const Seccomp& s) {
  std::string k;
  const scmp_version* v = seccomp_version();
  struct utsname u {};
  ::uname(&u);
  k += "libseccomp " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
       std::to_string(v->micro);
  k += " arch " + std::string(u.machine) + "\n";
  k += "default " + s.default_action + " " +
       (s.default_errno_ret ? std::to_string(*s.default_errno_ret) : "-") + "\n";
  for (const auto& a : s.architectures) k += "arch " + a + "\n";
  for (const auto& f : s.flags) k += "flag " + f + "\n";
  for (const auto& sc : s.syscalls) {
    k += "rule " + sc.action + " " + (sc.errno_ret ? std::to_string(*sc.errno_ret) : "-");
    for (const auto& n : sc.names) k += " " + n;
    for (const auto& a : sc.args) {
      k += " [" + std::to_string(a.index) + " " + a.op + " " + std::to_string(a.value) + " " +
           std::to_string(a.value_two) + "]";
    }
    k += "\n";
  }
  return k;
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string hex64(uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<size_t>(i)] = kHex[v & 0xf];
  return out;
}

// File: magic, key length (decimal) '\n', key, flags (decimal) '\n', program bytes.
std::string serialize(const std::string& key, const SeccompProgram& p) {
  std::string out(kMagic);
  out += std::to_string(key.size()) + "\n" + key + std::to_string(p.flags) + "\n";
  out.append(reinterpret_cast<const char*>(p.filter.data()), p.filter.size() * sizeof(sock_filter));
  return out;
}

bool parse(std::string_view file, const std::string& key, SeccompProgram& p) {
  if (file.substr(0, kMagic.size()) != kMagic) return false;
  file.remove_prefix(kMagic.size());
  auto nl = file.find('\n');
  if (nl == std::string_view::npos || std::to_string(key.size()) != file.substr(0, nl)) return false;
  file.remove_prefix(nl + 1);
  if (file.substr(0, key.size()) != key) return false;
  file.remove_prefix(key.size());
  nl = file.find('\n');
  if (nl == std::string_view::npos) return false;
  unsigned long flags = 0;
  for (char c : file.substr(0, nl)) {
    if (c < '0' || c > '9') return false;
    flags = flags * 10 + static_cast<unsigned long>(c - '0');
  }
  file.remove_prefix(nl + 1);
  if (file.empty() || file.size() % sizeof(sock_filter) != 0) return false;
  p.flags = static_cast<unsigned int>(flags);
  p.filter.resize(file.size() / sizeof(sock_filter));
  std::memcpy(p.filter.data(), file.data(), file.size());
  return true;
}

}  // namespace

Result<SeccompProgram> compile_seccomp_cached(const Seccomp& spec, const std::string& cache_dir) {
  if (cache_dir.empty() || !spec.listener_path.empty()) return compile_seccomp(spec);
  std::string key = profile_key(spec);
  std::string path = cache_dir + "/" + hex64(fnv1a(key)) + ".bpf";
  SeccompProgram prog;
  if (auto text = fs::read_file(path); text && parse(*text, key, prog)) return prog;
  ASSIGN_OR_RETURN(prog, compile_seccomp(spec));
  // Best effort: a cache that cannot be written only costs the next container a compile.
  if (::mkdir(cache_dir.c_str(), 0700) == 0 || errno == EEXIST) {
    (void)fs::write_file_atomic(path, serialize(key, prog), 0600);
  }
  return prog;
}

}  // namespace strata::oci
