// parse_spec(): config.json text -> a checked Spec (spec.h), following runtime-spec config.md
// (ociVersion, process, root, hostname, mounts, hooks, annotations) and, through
// spec_linux.cc, config-linux.md. Untrusted input (STYLE.md section 7): every field is typed
// and checked here, every field we do not implement is refused by name, and no exception
// leaves this file. Mount options follow the table runc and crun use (mount(8) names).
#include "oci/spec.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <set>

#include "base/fd.h"
#include "base/fs.h"
#include "base/strings.h"
#include "oci/json_reader.h"
#include "oci/names.h"
#include "oci/spec_internal.h"

namespace strata::oci {
namespace {

using json_reader::describe;
using json_reader::Json;
using json_reader::ObjectReader;

// The biggest real configs (podman's with its seccomp profile) are ~50 KiB.
constexpr size_t kMaxConfigBytes = 4 << 20;
constexpr size_t kMaxHostnameLength = 64;  // HOST_NAME_MAX

std::string quote(std::string_view s) { return describe(Json(std::string(s))); }

Status check_absolute(const std::string& p, const std::string& path) {
  if (!spec_internal::is_absolute(p)) return Error(path + ": must be an absolute path, got " + quote(p));
  return ok();
}

Status check_env(const std::vector<std::string>& env, const std::string& path) {
  for (size_t i = 0; i < env.size(); ++i) {
    size_t eq = env[i].find('=');
    if (eq == std::string::npos || eq == 0)
      return Error(json_reader::element_path(path, i) + ": expected NAME=VALUE, got " + quote(env[i]));
  }
  return ok();
}

// ---- process ----------------------------------------------------------------------------

Status parse_user(const Json& v, const std::string& path, User& out) {
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(v, path));
  TRY(r.read_required("uid", out.uid));
  TRY(r.read_required("gid", out.gid));
  TRY(r.read("umask", out.umask));
  if (out.umask && *out.umask > 0777)
    return Error(r.path_of("umask") + ": " + std::to_string(*out.umask) + " is not a umask (0..0777)");
  TRY(r.read("additionalGids", out.additional_gids));
  TRY(r.refuse("username", "not supported on Linux (Windows only)"));
  TRY(r.finish());
  // (uid_t)-1 is "unchanged" to setresuid: 4294967295 would leave the process root. runc
  // refuses every id past INT32_MAX.
  using spec_internal::check_id;
  TRY(check_id(out.uid, r.path_of("uid")));
  TRY(check_id(out.gid, r.path_of("gid")));
  for (size_t i = 0; i < out.additional_gids.size(); ++i)
    TRY(check_id(out.additional_gids[i], json_reader::element_path(r.path_of("additionalGids"), i)));
  return ok();
}

Status parse_capability_set(ObjectReader& r, std::string_view key, std::vector<int>& out) {
  std::vector<std::string> names;
  TRY(r.read(key, names));
  std::string path = r.path_of(key);
  out.clear();
  for (size_t i = 0; i < names.size(); ++i) {
    auto cap = capability_from_name(names[i]);
    if (!cap) return Error(json_reader::element_path(path, i) + ": unknown capability " + quote(names[i]));
    out.push_back(*cap);
  }
  return ok();
}

Status parse_capabilities(const Json& v, const std::string& path, Capabilities& out) {
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(v, path));
  TRY(parse_capability_set(r, "bounding", out.bounding));
  TRY(parse_capability_set(r, "effective", out.effective));
  TRY(parse_capability_set(r, "inheritable", out.inheritable));
  TRY(parse_capability_set(r, "permitted", out.permitted));
  TRY(parse_capability_set(r, "ambient", out.ambient));
  return r.finish();
}

Status parse_rlimits(const Json& v, const std::string& path, std::vector<Rlimit>& out) {
  TRY(json_reader::check_array(v, path));
  std::set<int> seen;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string p = json_reader::element_path(path, i);
    ASSIGN_OR_RETURN(auto r, ObjectReader::open(v[i], p));
    Rlimit rl;
    TRY(r.read_required("type", rl.type));
    TRY(r.read_required("hard", rl.hard));
    TRY(r.read_required("soft", rl.soft));
    TRY(r.finish());
    auto resource = rlimit_from_name(rl.type);
    if (!resource) return Error(r.path_of("type") + ": unknown rlimit " + quote(rl.type));
    rl.resource = *resource;
    if (!seen.insert(rl.resource).second)
      return Error(r.path_of("type") + ": duplicate rlimit " + quote(rl.type));
    if (rl.soft > rl.hard)
      return Error(p + ": soft limit " + std::to_string(rl.soft) + " is above the hard limit " +
                   std::to_string(rl.hard));
    out.push_back(std::move(rl));
  }
  return ok();
}

// `warnings` may be null (exec --process has nowhere to report them; the caller sees the
// fields). cwd is required in config.json (runtime-spec) and defaults to "/" for exec.
Status parse_process_object(const Json& v, const std::string& path, bool require_cwd, Process& out,
                            std::vector<std::string>* warnings) {
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(v, path));
  TRY(r.read("terminal", out.terminal));
  if (const Json* cs = r.find("consoleSize")) {
    ASSIGN_OR_RETURN(auto c, ObjectReader::open(*cs, r.path_of("consoleSize")));
    ConsoleSize size;
    TRY(c.read_required("height", size.height));
    TRY(c.read_required("width", size.width));
    TRY(c.finish());
    out.console_size = size;
  }
  ASSIGN_OR_RETURN(const Json* user, r.require("user"));
  TRY(parse_user(*user, r.path_of("user"), out.user));

  TRY(r.read_required("args", out.args));
  if (out.args.empty()) return Error(r.path_of("args") + ": must not be empty");
  if (out.args[0].empty())
    return Error(json_reader::element_path(r.path_of("args"), 0) + ": must not be empty");
  TRY(r.read("env", out.env));
  TRY(check_env(out.env, r.path_of("env")));
  if (require_cwd) {
    TRY(r.read_required("cwd", out.cwd));
  } else {
    TRY(r.read("cwd", out.cwd));
  }
  TRY(check_absolute(out.cwd, r.path_of("cwd")));

  if (const Json* caps = r.find("capabilities")) {
    Capabilities c;
    TRY(parse_capabilities(*caps, r.path_of("capabilities"), c));
    out.capabilities = std::move(c);
  }
  if (const Json* rl = r.find("rlimits")) TRY(parse_rlimits(*rl, r.path_of("rlimits"), out.rlimits));
  TRY(r.read("noNewPrivileges", out.no_new_privileges));
  TRY(r.read("oomScoreAdj", out.oom_score_adj));
  if (out.oom_score_adj && (*out.oom_score_adj < -1000 || *out.oom_score_adj > 1000))
    return Error(r.path_of("oomScoreAdj") + ": " + std::to_string(*out.oom_score_adj) +
                 " is out of range (-1000..1000)");

  // Both are enforced by an LSM strata does not drive; podman on Debian sends an AppArmor
  // profile by default, so refusing would break it. The caller logs the warning.
  TRY(r.read("apparmorProfile", out.apparmor_profile));
  if (!out.apparmor_profile.empty() && warnings != nullptr)
    warnings->push_back(r.path_of("apparmorProfile") +
                        ": ignored, strata does not apply AppArmor profiles (" + quote(out.apparmor_profile) +
                        ")");
  TRY(r.read("selinuxLabel", out.selinux_label));
  if (!out.selinux_label.empty() && warnings != nullptr)
    warnings->push_back(r.path_of("selinuxLabel") + ": ignored, strata does not apply SELinux labels (" +
                        quote(out.selinux_label) + ")");

  TRY(r.refuse("ioPriority"));
  TRY(r.refuse("scheduler"));
  TRY(r.refuse("execCPUAffinity"));
  TRY(r.refuse("commandLine", "not supported on Linux (Windows only)"));
  return r.finish();
}

// ---- mounts -----------------------------------------------------------------------------

struct FlagOption {
  std::string_view name;
  bool clear;  // the option turns the flag off ("rw" clears MS_RDONLY)
  unsigned long flag;
};

// mount(8)'s names, as runc and crun read them from mounts[].options.
constexpr FlagOption kFlagOptions[] = {
    {"defaults", false, 0},
    {"ro", false, MS_RDONLY},
    {"rw", true, MS_RDONLY},
    {"suid", true, MS_NOSUID},
    {"nosuid", false, MS_NOSUID},
    {"dev", true, MS_NODEV},
    {"nodev", false, MS_NODEV},
    {"exec", true, MS_NOEXEC},
    {"noexec", false, MS_NOEXEC},
    {"sync", false, MS_SYNCHRONOUS},
    {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},
    {"remount", false, MS_REMOUNT},
    {"mand", false, MS_MANDLOCK},
    {"nomand", true, MS_MANDLOCK},
    {"atime", true, MS_NOATIME},
    {"noatime", false, MS_NOATIME},
    {"diratime", true, MS_NODIRATIME},
    {"nodiratime", false, MS_NODIRATIME},
    {"relatime", false, MS_RELATIME},
    {"norelatime", true, MS_RELATIME},
    {"strictatime", false, MS_STRICTATIME},
    {"nostrictatime", true, MS_STRICTATIME},
    {"bind", false, MS_BIND},
    {"rbind", false, MS_BIND | MS_REC},
    {"nosymfollow", false, MS_NOSYMFOLLOW},
    {"symfollow", true, MS_NOSYMFOLLOW},
    {"lazytime", false, MS_LAZYTIME},
    {"nolazytime", true, MS_LAZYTIME},
    {"iversion", false, MS_I_VERSION},
    {"noiversion", true, MS_I_VERSION},
    {"acl", false, MS_POSIXACL},
    {"noacl", true, MS_POSIXACL},
    {"silent", false, MS_SILENT},
    {"loud", true, MS_SILENT},
};

struct PropagationOption {
  std::string_view name;
  unsigned long flags;
};

constexpr PropagationOption kPropagation[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

struct AttrOption {
  std::string_view name;
  bool clear;
  uint64_t attr;
};

// mount_setattr(2) attributes applied to the whole subtree (runc 1.1 names).
constexpr AttrOption kRecursiveOptions[] = {
    {"rro", false, MOUNT_ATTR_RDONLY},
    {"rrw", true, MOUNT_ATTR_RDONLY},
    {"rnosuid", false, MOUNT_ATTR_NOSUID},
    {"rsuid", true, MOUNT_ATTR_NOSUID},
    {"rnodev", false, MOUNT_ATTR_NODEV},
    {"rdev", true, MOUNT_ATTR_NODEV},
    {"rnoexec", false, MOUNT_ATTR_NOEXEC},
    {"rexec", true, MOUNT_ATTR_NOEXEC},
    {"rnodiratime", false, MOUNT_ATTR_NODIRATIME},
    {"rdiratime", true, MOUNT_ATTR_NODIRATIME},
    {"rnosymfollow", false, MOUNT_ATTR_NOSYMFOLLOW},
    {"rsymfollow", true, MOUNT_ATTR_NOSYMFOLLOW},
};

// The atime mode is one 3-valued field in mount_setattr: setting it needs MOUNT_ATTR__ATIME in
// attr_clr as well (mount_setattr(2)).
constexpr PropagationOption kRecursiveAtime[] = {
    {"rrelatime", MOUNT_ATTR_RELATIME},
    {"rnoatime", MOUNT_ATTR_NOATIME},
    {"rstrictatime", MOUNT_ATTR_STRICTATIME},
};

template <class Table>
auto find_option(const Table& table, std::string_view name) -> decltype(&table[0]) {
  for (const auto& entry : table)
    if (entry.name == name) return &entry;
  return nullptr;
}

void set_bits(unsigned long& set, unsigned long& clear, unsigned long bits, bool clearing) {
  // The last of "ro"/"rw" wins, as with mount(8).
  if (clearing) {
    clear |= bits;
    set &= ~bits;
  } else {
    set |= bits;
    clear &= ~bits;
  }
}

Status parse_mount_options(Mount& m, const std::string& path) {
  for (size_t i = 0; i < m.options.size(); ++i) {
    const std::string& opt = m.options[i];
    std::string p = json_reader::element_path(path, i);
    if (opt.empty()) return Error(p + ": empty mount option");
    if (const auto* f = find_option(kFlagOptions, opt)) {
      set_bits(m.flags, m.clear_flags, f->flag, f->clear);
    } else if (const auto* prop = find_option(kPropagation, opt)) {
      // Propagation changes are separate mount(2) calls applied in order; the last one decides.
      m.propagation = prop->flags;
    } else if (const auto* a = find_option(kRecursiveOptions, opt)) {
      if (a->clear) {
        m.rec_attr_clr |= a->attr;
        m.rec_attr_set &= ~a->attr;
      } else {
        m.rec_attr_set |= a->attr;
        m.rec_attr_clr &= ~a->attr;
      }
    } else if (const auto* at = find_option(kRecursiveAtime, opt)) {
      m.rec_attr_set = (m.rec_attr_set & ~uint64_t{MOUNT_ATTR__ATIME}) | at->flags;
      m.rec_attr_clr |= MOUNT_ATTR__ATIME;
    } else if (opt == "ratime" || opt == "rnorelatime" || opt == "rnostrictatime") {
      return Error(p + ": " + quote(opt) + " is not supported (say rrelatime, rnoatime or rstrictatime)");
    } else if (opt == "idmap" || opt == "ridmap") {
      return Error(p + ": " + quote(opt) + " is not supported (no idmapped mounts)");
    } else if (opt == "tmpcopyup") {
      if (m.type != "tmpfs") return Error(p + ": tmpcopyup only applies to tmpfs mounts");
      m.tmpcopyup = true;
    } else if (opt == "notmpcopyup") {
      m.tmpcopyup = false;
    } else {
      if (!m.data.empty()) m.data += ',';
      m.data += opt;
    }
  }
  return ok();
}

Status parse_mounts(const Json& v, const std::string& path, std::vector<Mount>& out) {
  TRY(json_reader::check_array(v, path));
  for (size_t i = 0; i < v.size(); ++i) {
    std::string p = json_reader::element_path(path, i);
    ASSIGN_OR_RETURN(auto r, ObjectReader::open(v[i], p));
    Mount m;
    TRY(r.read_required("destination", m.destination));
    TRY(r.read("type", m.type));
    TRY(r.read("source", m.source));
    TRY(r.read("options", m.options));
    TRY(r.refuse("uidMappings", "not supported (no idmapped mounts)"));
    TRY(r.refuse("gidMappings", "not supported (no idmapped mounts)"));
    TRY(r.finish());
    if (!spec_internal::is_absolute(m.destination))
      return Error(r.path_of("destination") + ": must be an absolute path, got " + quote(m.destination) +
                   " (the runtime-spec tolerates relative destinations; strata does not)");
    TRY(parse_mount_options(m, r.path_of("options")));
    // runtime-spec: with a bind option the type is ignored; type "bind" alone also means a
    // bind mount to runc and crun, so both end up as MS_BIND here.
    if (m.type == "bind") m.flags |= MS_BIND;
    if (m.is_bind()) {
      if (m.source.empty()) return Error(r.path_of("source") + ": required for a bind mount");
      // mount(2) ignores the data of a bind mount: an option we do not know would be dropped
      // without a word.
      if (!m.data.empty())
        return Error(r.path_of("options") + ": " + quote(m.data) + " cannot be applied to a bind mount");
    } else if (m.type.empty()) {
      return Error(r.path_of("type") + ": required unless the mount is a bind mount");
    }
    out.push_back(std::move(m));
  }
  return ok();
}

// ---- hooks ------------------------------------------------------------------------------

Status parse_hook_list(ObjectReader& r, std::string_view key, std::vector<Hook>& out) {
  const Json* v = r.find(key);
  if (v == nullptr) return ok();
  std::string path = r.path_of(key);
  TRY(json_reader::check_array(*v, path));
  for (size_t i = 0; i < v->size(); ++i) {
    std::string p = json_reader::element_path(path, i);
    ASSIGN_OR_RETURN(auto h, ObjectReader::open((*v)[i], p));
    Hook hook;
    TRY(h.read_required("path", hook.path));
    TRY(check_absolute(hook.path, h.path_of("path")));
    TRY(h.read("args", hook.args));
    TRY(h.read("env", hook.env));
    TRY(check_env(hook.env, h.path_of("env")));
    TRY(h.read("timeout", hook.timeout_s));
    if (hook.timeout_s && *hook.timeout_s <= 0)
      return Error(h.path_of("timeout") + ": must be greater than zero, got " +
                   std::to_string(*hook.timeout_s));
    TRY(h.finish());
    out.push_back(std::move(hook));
  }
  return ok();
}

Status parse_hooks(const Json& v, const std::string& path, Hooks& out) {
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(v, path));
  TRY(parse_hook_list(r, "prestart", out.prestart));
  TRY(parse_hook_list(r, "createRuntime", out.create_runtime));
  TRY(parse_hook_list(r, "createContainer", out.create_container));
  TRY(parse_hook_list(r, "startContainer", out.start_container));
  TRY(parse_hook_list(r, "poststart", out.poststart));
  TRY(parse_hook_list(r, "poststop", out.poststop));
  return r.finish();
}

// ---- top level --------------------------------------------------------------------------

Status check_name(const std::string& name, const std::string& path) {
  if (name.size() > kMaxHostnameLength)
    return Error(path + ": longer than " + std::to_string(kMaxHostnameLength) + " bytes");
  return ok();
}

// Rules that tie parts of the spec together (config.md, config-linux.md).
Status check_cross_fields(const Spec& spec) {
  bool uts = spec.linux.has_namespace(NamespaceType::kUts);
  // config.md allows the container's UTS namespace to be the runtime's; runc refuses that,
  // and so do we: setting the name there would rename the host.
  if (!spec.hostname.empty() && !uts)
    return Error("hostname: needs a uts namespace in linux.namespaces (it would otherwise rename the host)");
  if (!spec.domainname.empty() && !uts)
    return Error(
        "domainname: needs a uts namespace in linux.namespaces (it would otherwise rename the host)");
  // Without a mount namespace every mount, mask and propagation change would land in the
  // host's mount table.
  if (!spec.linux.has_namespace(NamespaceType::kMount)) {
    const char* what = !spec.mounts.empty()                 ? "mounts"
                       : !spec.linux.masked_paths.empty()   ? "linux.maskedPaths"
                       : !spec.linux.readonly_paths.empty() ? "linux.readonlyPaths"
                       : spec.linux.rootfs_propagation != 0 ? "linux.rootfsPropagation"
                       : spec.root.readonly                 ? "root.readonly"
                                                            : nullptr;
    if (what != nullptr)
      return Error(std::string(what) +
                   ": needs a mount namespace in linux.namespaces (it would otherwise change "
                   "the host's mounts)");
  }
  return ok();
}

Result<Spec> parse_spec_json(const Json& doc) {
  Spec spec;
  TRY(json_reader::check_object(doc, "config.json"));
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(doc, ""));
  TRY(r.read_required("ociVersion", spec.oci_version));
  if (!spec.oci_version.starts_with("1."))
    return Error("ociVersion: unsupported version " + quote(spec.oci_version) + " (strata implements 1.x)");

  if (const Json* p = r.find("process")) {
    Process process;
    TRY(parse_process_object(*p, "process", /*require_cwd=*/true, process, &spec.warnings));
    spec.process = std::move(process);
  }

  ASSIGN_OR_RETURN(const Json* root, r.require("root"));
  {
    ASSIGN_OR_RETURN(auto rr, ObjectReader::open(*root, "root"));
    TRY(rr.read_required("path", spec.root.path));
    if (spec.root.path.empty()) return Error("root.path: must not be empty");
    TRY(rr.read("readonly", spec.root.readonly));
    TRY(rr.finish());
  }

  TRY(r.read("hostname", spec.hostname));
  TRY(check_name(spec.hostname, "hostname"));
  TRY(r.read("domainname", spec.domainname));
  TRY(check_name(spec.domainname, "domainname"));
  if (const Json* m = r.find("mounts")) TRY(parse_mounts(*m, "mounts", spec.mounts));
  if (const Json* h = r.find("hooks")) TRY(parse_hooks(*h, "hooks", spec.hooks));
  TRY(r.read("annotations", spec.annotations));
  for (const auto& [key, value] : spec.annotations)
    if (key.empty()) return Error("annotations: keys must not be empty");
  if (const Json* l = r.find("linux"))
    TRY(spec_internal::parse_linux(*l, "linux", spec.linux, spec.warnings));

  for (std::string_view platform : {"solaris", "windows", "vm", "zos"})
    TRY(r.refuse(platform, "not supported on Linux"));
  TRY(r.finish());
  TRY(check_cross_fields(spec));
  return spec;
}

// Reads at most kMaxConfigBytes of a regular file: a config.json that is a FIFO or a symlink
// to /dev/zero must fail, not hang or fill memory.
Result<std::string> read_config(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) return Error::sys("open " + path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Error::sys("stat " + path);
  if (!S_ISREG(st.st_mode)) return Error("read " + path + ": not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxConfigBytes)
    return Error("read " + path + ": larger than " + std::to_string(kMaxConfigBytes) + " bytes");
  std::string out;
  TRY(fs::read_chunks(
      fd.get(), path,
      [&](const char* p, size_t n) -> Status {
        out.append(p, n);
        if (out.size() > kMaxConfigBytes)
          return Error("read " + path + ": larger than " + std::to_string(kMaxConfigBytes) + " bytes");
        return ok();
      },
      16384));
  return out;
}

// Runs f with nlohmann's (and std::bad_alloc's) exceptions turned into an Error: nothing may
// escape the parser (STYLE.md section 5). The walk itself does not throw; this is the net.
template <class F>
auto guarded(std::string_view what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Error("parse " + std::string(what) + ": " + e.what());
  }
}

}  // namespace

bool Mount::is_bind() const { return type == "bind" || (flags & MS_BIND) != 0; }

Result<Spec> parse_spec(std::string_view json_text) {
  return guarded("config.json", [&]() -> Result<Spec> {
    if (json_text.size() > kMaxConfigBytes)
      return Error("parse config.json: larger than " + std::to_string(kMaxConfigBytes) + " bytes");
    ASSIGN_OR_RETURN(Json doc, json_reader::parse(json_text, "config.json"));
    return parse_spec_json(doc);
  });
}

Result<Spec> load_spec(const std::string& bundle_dir) {
  std::string path = fs::join(bundle_dir, "config.json");
  ASSIGN_OR_RETURN(std::string text, read_config(path));
  auto spec = parse_spec(text);
  if (!spec) return std::move(spec).error().context(path);
  return spec;
}

Result<Process> parse_process(std::string_view json_text) {
  return guarded("process.json", [&]() -> Result<Process> {
    if (json_text.size() > kMaxConfigBytes)
      return Error("parse process.json: larger than " + std::to_string(kMaxConfigBytes) + " bytes");
    ASSIGN_OR_RETURN(Json doc, json_reader::parse(json_text, "process.json"));
    TRY(json_reader::check_object(doc, "process.json"));
    Process process;
    TRY(parse_process_object(doc, "", /*require_cwd=*/false, process, nullptr));
    return process;
  });
}

namespace spec_internal {

bool is_absolute(const std::string& p) { return !p.empty() && p.front() == '/'; }

bool has_dotdot(std::string_view p) {
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    if (p.substr(i, j - i) == "..") return true;
    i = j + 1;
  }
  return false;
}

Status check_id(uint64_t id, const std::string& path) {
  if (id > str::kMaxId)
    return Error(path + ": " + std::to_string(id) + " is out of range (ids are 0 to " +
                 std::to_string(str::kMaxId) + ")");
  return ok();
}

}  // namespace spec_internal

}  // namespace strata::oci
