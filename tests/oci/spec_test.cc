// config.json parsing and validation (src/oci/spec.h): every refusal names its field, real
// clients' configs parse, and the seed corpus of the spec fuzzer replays here too.
#include "oci/spec.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/fs.h"

namespace strata::oci {
namespace {

using nlohmann::json;

json minimal() {
  return json::parse(R"({
    "ociVersion": "1.0.2",
    "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
    "root": {"path": "rootfs"},
    "linux": {"namespaces": [{"type": "mount"}]}
  })");
}

Result<Spec> parse(const json& j) { return parse_spec(j.dump()); }

// The error message of a config that must be refused.
std::string refusal(const json& j) {
  auto r = parse(j);
  if (r.ok()) {
    ADD_FAILURE() << "accepted: " << j.dump();
    return "";
  }
  return r.error().message();
}

// Applies a JSON merge patch (RFC 7396) to minimal().
json with(const char* patch) {
  json j = minimal();
  j.merge_patch(json::parse(patch));
  return j;
}

// ---- whole documents --------------------------------------------------------------------

TEST(SpecParseTest, MinimalConfig) {
  auto spec = parse(minimal());
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->oci_version, "1.0.2");
  EXPECT_EQ(spec->root.path, "rootfs");
  EXPECT_FALSE(spec->root.readonly);
  ASSERT_TRUE(spec->process);
  EXPECT_EQ(spec->process->args, std::vector<std::string>{"sh"});
  EXPECT_FALSE(spec->process->capabilities);
  EXPECT_TRUE(spec->warnings.empty());
}

TEST(SpecParseTest, DefaultSpecParsesToRuncsTemplate) {
  std::string text = default_spec_json(false, 0, 0);
  EXPECT_EQ(text.substr(0, 18), "{\n  \"ociVersion\": ");  // pretty-printed, indent 2
  auto spec = parse_spec(text);
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->oci_version, kOciVersion);
  EXPECT_EQ(spec->hostname, "strata");
  EXPECT_EQ(spec->root.path, "rootfs");
  EXPECT_TRUE(spec->root.readonly);
  const Process& p = *spec->process;
  EXPECT_TRUE(p.terminal);
  EXPECT_EQ(p.args, std::vector<std::string>{"sh"});
  EXPECT_EQ(p.env, (std::vector<std::string>{
                       "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"}));
  EXPECT_EQ(p.cwd, "/");
  EXPECT_TRUE(p.no_new_privileges);
  ASSERT_TRUE(p.capabilities);
  EXPECT_EQ(p.capabilities->bounding.size(), 14u);
  EXPECT_EQ(p.capabilities->effective, p.capabilities->bounding);
  EXPECT_EQ(p.capabilities->permitted, p.capabilities->bounding);
  EXPECT_TRUE(p.capabilities->inheritable.empty());
  EXPECT_TRUE(p.capabilities->ambient.empty());
  ASSERT_EQ(p.rlimits.size(), 1u);
  EXPECT_EQ(p.rlimits[0].resource, RLIMIT_NOFILE);
  EXPECT_EQ(p.rlimits[0].hard, 1024u);
  EXPECT_EQ(p.rlimits[0].soft, 1024u);

  std::vector<std::string> destinations;
  for (const auto& m : spec->mounts) destinations.push_back(m.destination);
  EXPECT_EQ(destinations, (std::vector<std::string>{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                                                    "/sys", "/sys/fs/cgroup"}));
  EXPECT_EQ(spec->mounts[1].flags, static_cast<unsigned long>(MS_NOSUID | MS_STRICTATIME));
  EXPECT_EQ(spec->mounts[1].data, "mode=755,size=65536k");
  EXPECT_EQ(spec->mounts[2].data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
  EXPECT_EQ(spec->mounts[5].flags, static_cast<unsigned long>(MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY));

  std::vector<std::string> namespaces;
  for (const auto& ns : spec->linux.namespaces) namespaces.emplace_back(namespace_name(ns.type));
  EXPECT_EQ(namespaces, (std::vector<std::string>{"pid", "network", "ipc", "uts", "mount", "cgroup"}));
  EXPECT_EQ(spec->linux.masked_paths.size(), 10u);
  EXPECT_EQ(spec->linux.readonly_paths.size(), 5u);
  ASSERT_TRUE(spec->linux.resources);
  ASSERT_EQ(spec->linux.resources->devices.size(), 1u);
  EXPECT_FALSE(spec->linux.resources->devices[0].allow);
  EXPECT_EQ(spec->linux.resources->devices[0].type, 'a');
  EXPECT_TRUE(spec->linux.uid_mappings.empty());
}

TEST(SpecParseTest, DefaultRootlessSpecMapsTheCaller) {
  auto spec = parse_spec(default_spec_json(true, 1000, 1001));
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_TRUE(spec->linux.has_namespace(NamespaceType::kUser));
  EXPECT_FALSE(spec->linux.has_namespace(NamespaceType::kNetwork));
  EXPECT_FALSE(spec->linux.has_namespace(NamespaceType::kCgroup));
  EXPECT_TRUE(spec->linux.has_namespace(NamespaceType::kMount));
  ASSERT_EQ(spec->linux.uid_mappings.size(), 1u);
  EXPECT_EQ(spec->linux.uid_mappings[0].container_id, 0u);
  EXPECT_EQ(spec->linux.uid_mappings[0].host_id, 1000u);
  EXPECT_EQ(spec->linux.uid_mappings[0].size, 1u);
  ASSERT_EQ(spec->linux.gid_mappings.size(), 1u);
  EXPECT_EQ(spec->linux.gid_mappings[0].host_id, 1001u);
  EXPECT_FALSE(spec->linux.resources);
  for (const auto& m : spec->mounts) {
    EXPECT_NE(m.type, "cgroup");
    EXPECT_EQ(m.data.find("gid="), std::string::npos) << m.destination;
    if (m.destination == "/sys") {
      EXPECT_TRUE(m.is_bind());
      EXPECT_EQ(m.source, "/sys");
      EXPECT_EQ(m.flags,
                static_cast<unsigned long>(MS_BIND | MS_REC | MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY));
    }
  }
}

TEST(SpecParseTest, PodmanStyleConfigParses) {
  // The shape podman 4.3 writes for `podman run` as root on Debian: AppArmor profile, systemd
  // cgroup path, joined network namespace, tmpcopyup, seccomp with errnoRet and args.
  json j = minimal();
  j["ociVersion"] = "1.0.2-dev";
  j["process"]["user"] = {{"uid", 0}, {"gid", 0}, {"umask", 18}, {"additionalGids", {0, 1, 2, 3, 4, 6, 10}}};
  j["process"]["apparmorProfile"] = "containers-default-0.50.0";
  j["process"]["oomScoreAdj"] = 0;
  j["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"hard", 1048576}, {"soft", 1048576}}};
  j["hostname"] = "3f2a1b4c5d6e";
  j["annotations"] = {{"io.container.manager", "libpod"}};
  j["mounts"] = json::parse(R"([
    {"destination": "/etc/hosts", "type": "bind", "source": "/run/x/hosts", "options": ["bind", "rprivate"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
     "options": ["rw", "rprivate", "noexec", "nosuid", "nodev", "tmpcopyup"]}
  ])");
  j["linux"] = json::parse(R"({
    "sysctl": {"net.ipv4.ping_group_range": "0 0"},
    "resources": {"devices": [{"allow": false, "access": "rwm"}], "pids": {"limit": 2048}},
    "cgroupsPath": "machine.slice:libpod:3f2a1b4c5d6e",
    "namespaces": [{"type": "pid"}, {"type": "network", "path": "/run/netns/netns-1"}, {"type": "ipc"},
                   {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
    "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                             {"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                             {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                              "args": [{"index": 0, "value": 0, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]}]},
    "maskedPaths": ["/proc/acpi"], "readonlyPaths": ["/proc/sys"]
  })");
  auto spec = parse(j);
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->process->user.umask, 18u);
  EXPECT_EQ(spec->process->user.additional_gids.size(), 7u);
  EXPECT_EQ(spec->process->oom_score_adj, 0);
  EXPECT_EQ(spec->process->apparmor_profile, "containers-default-0.50.0");
  ASSERT_EQ(spec->warnings.size(), 1u);
  EXPECT_NE(spec->warnings[0].find("process.apparmorProfile"), std::string::npos);
  EXPECT_EQ(spec->linux.resources->pids_limit, 2048);
  EXPECT_EQ(spec->linux.sysctl.at("net.ipv4.ping_group_range"), "0 0");
  EXPECT_EQ(spec->linux.find_namespace(NamespaceType::kNetwork)->path, "/run/netns/netns-1");
  const Seccomp& s = *spec->linux.seccomp;
  EXPECT_EQ(s.default_action, "SCMP_ACT_ERRNO");
  EXPECT_EQ(s.default_errno_ret, 38u);
  ASSERT_EQ(s.syscalls.size(), 3u);
  EXPECT_EQ(s.syscalls[1].errno_ret, 1u);
  ASSERT_EQ(s.syscalls[2].args.size(), 1u);
  EXPECT_EQ(s.syscalls[2].args[0].op, "SCMP_CMP_EQ");
  EXPECT_TRUE(spec->mounts[0].is_bind());
  EXPECT_EQ(spec->mounts[0].propagation, static_cast<unsigned long>(MS_PRIVATE | MS_REC));
  EXPECT_TRUE(spec->mounts[1].tmpcopyup);
  EXPECT_EQ(spec->mounts[1].data, "");
}

TEST(SpecParseTest, NullMeansAbsent) {
  json j = minimal();
  j["hostname"] = nullptr;
  j["process"]["capabilities"] = nullptr;
  j["process"]["env"] = nullptr;
  j["linux"]["seccomp"] = nullptr;
  j["linux"]["intelRdt"] = nullptr;
  auto spec = parse(j);
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_FALSE(spec->process->capabilities);
  EXPECT_FALSE(spec->linux.seccomp);
}

// ---- syntax and types -------------------------------------------------------------------

TEST(SpecParseTest, MalformedJsonSaysWhatTheParserSaid) {
  auto r = parse_spec("{\"ociVersion\": ");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message().rfind("parse config.json: ", 0), 0u) << r.error().message();
  EXPECT_NE(r.error().message().find("parse error"), std::string::npos);
  EXPECT_FALSE(parse_spec("").ok());
  EXPECT_FALSE(parse_spec("{} trailing").ok());
  EXPECT_FALSE(parse_spec("{\"a\": \"\xff\"}").ok());  // not UTF-8
}

TEST(SpecParseTest, TopLevelMustBeAnObject) {
  EXPECT_EQ(parse_spec("[1]").error().message(), "config.json: expected an object, got an array");
  EXPECT_EQ(parse_spec("3").error().message(), "config.json: expected an object, got 3");
}

TEST(SpecParseTest, RefusesDuplicateKeys) {
  auto r = parse_spec(R"({"ociVersion": "1.0.0", "root": {"path": "a", "path": "b"}})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "parse config.json: duplicate key \"path\"");
  // The same key in sibling objects is fine.
  EXPECT_TRUE(parse_spec(R"({"ociVersion": "1.0.0", "root": {"path": "a"}, "linux": {"namespaces":
      [{"type": "mount"}, {"type": "pid"}]}})")
                  .ok());
}

TEST(SpecParseTest, RefusesDeepNesting) {
  std::string deep = R"({"ociVersion": "1.0.0", "root": {"path": "a"}, "annotations": )";
  deep += std::string(10000, '[') + std::string(10000, ']') + "}";
  auto r = parse_spec(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("nested deeper than"), std::string::npos) << r.error().message();
}

TEST(SpecParseTest, TypeErrorsNameTheField) {
  EXPECT_EQ(refusal(with(R"({"process": {"user": {"uid": "abc"}}})")),
            "process.user.uid: expected an unsigned integer, got \"abc\"");
  EXPECT_EQ(refusal(with(R"({"process": {"user": {"uid": -1}}})")),
            "process.user.uid: expected an unsigned integer, got -1");
  EXPECT_EQ(refusal(with(R"({"process": {"user": {"gid": 4294967296}}})")),
            "process.user.gid: 4294967296 is out of range (0..4294967295)");
  EXPECT_EQ(refusal(with(R"({"process": {"user": {"uid": 1.5}}})")),
            "process.user.uid: expected an unsigned integer, got 1.5");
  EXPECT_EQ(refusal(with(R"({"process": {"terminal": "yes"}})")),
            "process.terminal: expected a boolean, got \"yes\"");
  EXPECT_EQ(refusal(with(R"({"process": {"args": "sh"}})")), "process.args: expected an array, got \"sh\"");
  EXPECT_EQ(refusal(with(R"({"process": {"args": ["sh", 1]}})")),
            "process.args[1]: expected a string, got 1");
  EXPECT_EQ(refusal(with(R"({"linux": {"namespaces": {}}})")),
            "linux.namespaces: expected an array, got an object");
  EXPECT_EQ(refusal(with(R"({"annotations": {"a": 1}})")), "annotations.a: expected a string, got 1");
  EXPECT_EQ(refusal(with(R"({"process": {"oomScoreAdj": 1001}})")),
            "process.oomScoreAdj: 1001 is out of range (-1000..1000)");
}

TEST(SpecParseTest, RefusesNulBytes) {
  json j = minimal();
  j["process"]["args"] = {std::string("a\0b", 3)};
  EXPECT_EQ(refusal(j), "process.args[0]: contains a NUL byte");
}

TEST(SpecParseTest, LongStringsAreShortenedInErrors) {
  json j = minimal();
  j["process"]["cwd"] = std::string(1000, 'x');
  std::string msg = refusal(j);
  EXPECT_LT(msg.size(), 200u);
  EXPECT_NE(msg.find("..."), std::string::npos);
}

// ---- unknown and unsupported fields -----------------------------------------------------

TEST(SpecParseTest, UnknownFieldsAreRefusedWithTheirPath) {
  EXPECT_EQ(refusal(with(R"({"foo": 1})")), "unknown field \"foo\"");
  EXPECT_EQ(refusal(with(R"({"process": {"user": {"foo": 1}}})")), "unknown field \"process.user.foo\"");
  EXPECT_EQ(refusal(with(R"({"linux": {"resources": {"foo": 1}}})")),
            "unknown field \"linux.resources.foo\"");
  EXPECT_EQ(refusal(with(R"({"linux": {"resources": {"memory": {"limt": 1}}}})")),
            "unknown field \"linux.resources.memory.limt\"");
  json j = minimal();
  j["linux"]["namespaces"][0]["flags"] = 1;
  EXPECT_EQ(refusal(j), "unknown field \"linux.namespaces[0].flags\"");
  // Field names are case-sensitive (Go's decoder is not; we are strict).
  EXPECT_EQ(refusal(with(R"({"Hostname": "x"})")), "unknown field \"Hostname\"");
}

TEST(SpecParseTest, OtherPlatformsAreRefused) {
  for (const char* p : {"solaris", "windows", "vm", "zos"}) {
    json j = minimal();
    j[p] = {{"x", 1}};
    EXPECT_EQ(refusal(j), std::string(p) + ": not supported on Linux");
  }
}

TEST(SpecParseTest, UnimplementedFieldsAreRefusedByName) {
  struct {
    const char* patch;
    const char* error;
  } cases[] = {
      {R"({"process": {"scheduler": {"policy": "SCHED_FIFO"}}})", "process.scheduler: not supported"},
      {R"({"process": {"ioPriority": {"class": "IOPRIO_CLASS_RT"}}})", "process.ioPriority: not supported"},
      {R"({"process": {"execCPUAffinity": {"initial": "0"}}})", "process.execCPUAffinity: not supported"},
      {R"({"process": {"commandLine": "cmd.exe"}})",
       "process.commandLine: not supported on Linux (Windows only)"},
      {R"({"process": {"user": {"username": "root"}}})",
       "process.user.username: not supported on Linux (Windows only)"},
      {R"({"linux": {"intelRdt": {"closID": "x"}}})", "linux.intelRdt: not supported"},
      {R"({"linux": {"personality": {"domain": "LINUX32"}}})", "linux.personality: not supported"},
      {R"({"linux": {"memoryPolicy": {"mode": "MPOL_BIND"}}})", "linux.memoryPolicy: not supported"},
      {R"({"linux": {"netDevices": {"eth0": {}}}})", "linux.netDevices: not supported"},
      {R"({"linux": {"resources": {"network": {"classID": 1}}}})", "linux.resources.network: not supported"},
      {R"({"linux": {"resources": {"rdma": {"mlx5_1": {"hcaHandles": 3}}}}})",
       "linux.resources.rdma: not supported"},
      {R"({"linux": {"resources": {"cpu": {"burst": 1000}}}})", "linux.resources.cpu.burst: not supported"},
      {R"({"linux": {"resources": {"blockIO": {"weightDevice": [
          {"major": 8, "minor": 0, "weight": 500}]}}}})",
       "linux.resources.blockIO.weightDevice: not supported"},
      {R"({"linux": {"resources": {"blockIO": {"throttleReadBpsDevice": [
          {"major": 8, "minor": 0, "rate": 1}]}}}})",
       "linux.resources.blockIO.throttleReadBpsDevice: not supported"},
      {R"({"linux": {"resources": {"memory": {"kernelTCP": 1048576}}}})",
       "linux.resources.memory.kernelTCP: not supported (kernel TCP memory limits are deprecated)"},
      {R"({"linux": {"resources": {"memory": {"useHierarchy": false}}}})",
       "linux.resources.memory.useHierarchy: false is not supported (memory accounting is always "
       "hierarchical)"},
      {R"({"linux": {"resources": {"memory": {"checkBeforeUpdate": true}}}})",
       "linux.resources.memory.checkBeforeUpdate: true is not supported"},
      {R"({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/a.sock"}}})",
       "linux.seccomp.listenerPath: not supported (no seccomp notify agent support)"},
      {R"({"mounts": [{"destination": "/a", "type": "tmpfs",
          "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}]})",
       "mounts[0].uidMappings: not supported (no idmapped mounts)"},
  };
  for (const auto& c : cases) EXPECT_EQ(refusal(with(c.patch)), c.error) << c.patch;
}

TEST(SpecParseTest, EmptyUnimplementedFieldsAskForNothing) {
  json j = minimal();
  j["linux"]["resources"] = json::parse(R"({"blockIO": {"weightDevice": []}, "network": {}, "rdma": {},
      "memory": {"kernelTCP": null, "useHierarchy": true, "checkBeforeUpdate": false}})");
  j["linux"]["intelRdt"] = json::object();
  j["process"]["scheduler"] = nullptr;
  auto spec = parse(j);
  ASSERT_TRUE(spec.ok()) << spec.error().message();
}

TEST(SpecParseTest, LsmLabelsAreAcceptedWithWarnings) {
  json j = minimal();
  j["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0";
  j["process"]["apparmorProfile"] = "unconfined";
  j["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0";
  auto spec = parse(j);
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->process->selinux_label, "system_u:system_r:container_t:s0");
  EXPECT_EQ(spec->linux.mount_label, "system_u:object_r:container_file_t:s0");
  ASSERT_EQ(spec->warnings.size(), 3u);
  EXPECT_EQ(spec->warnings[2].rfind("linux.mountLabel: ignored", 0), 0u) << spec->warnings[2];
}

// ---- required fields and top-level rules ------------------------------------------------

TEST(SpecParseTest, OciVersionIsRequiredAndMustBeOne) {
  json j = minimal();
  j.erase("ociVersion");
  EXPECT_EQ(refusal(j), "ociVersion: required");
  EXPECT_EQ(refusal(with(R"({"ociVersion": "2.0.0"})")),
            "ociVersion: unsupported version \"2.0.0\" (strata implements 1.x)");
  EXPECT_EQ(refusal(with(R"({"ociVersion": "1"})")),
            "ociVersion: unsupported version \"1\" (strata implements 1.x)");
  EXPECT_TRUE(parse(with(R"({"ociVersion": "1.2.0-rc.1"})")).ok());
}

TEST(SpecParseTest, RootPathIsRequired) {
  json j = minimal();
  j.erase("root");
  EXPECT_EQ(refusal(j), "root: required");
  EXPECT_EQ(refusal(with(R"({"root": {"path": ""}})")), "root.path: must not be empty");
  EXPECT_EQ(refusal(with(R"({"root": {"path": null, "readonly": true}})")), "root.path: required");
}

TEST(SpecParseTest, ProcessIsOptionalButCompleteWhenPresent) {
  json j = minimal();
  j.erase("process");
  auto spec = parse(j);
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_FALSE(spec->process);

  EXPECT_EQ(refusal(with(R"({"process": {"args": []}})")), "process.args: must not be empty");
  EXPECT_EQ(refusal(with(R"({"process": {"args": [""]}})")), "process.args[0]: must not be empty");
  EXPECT_EQ(refusal(with(R"({"process": {"cwd": "tmp"}})")),
            "process.cwd: must be an absolute path, got \"tmp\"");
  EXPECT_EQ(refusal(with(R"({"process": {"env": ["A=1", "B"]}})")),
            "process.env[1]: expected NAME=VALUE, got \"B\"");
  EXPECT_EQ(refusal(with(R"({"process": {"env": ["=1"]}})")),
            "process.env[0]: expected NAME=VALUE, got \"=1\"");
  EXPECT_EQ(refusal(with(R"({"process": {"user": {"umask": 512}}})")),
            "process.user.umask: 512 is not a umask (0..0777)");
  json k = minimal();
  k["process"].erase("cwd");
  EXPECT_EQ(refusal(k), "process.cwd: required");
  k = minimal();
  k["process"].erase("user");
  EXPECT_EQ(refusal(k), "process.user: required");
  k = minimal();
  k["process"]["user"].erase("gid");
  EXPECT_EQ(refusal(k), "process.user.gid: required");
}

TEST(SpecParseTest, ConsoleSize) {
  auto spec = parse(with(R"({"process": {"terminal": true, "consoleSize": {"height": 24, "width": 80}}})"));
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  ASSERT_TRUE(spec->process->console_size);
  EXPECT_EQ(spec->process->console_size->height, 24u);
  EXPECT_EQ(spec->process->console_size->width, 80u);
  EXPECT_EQ(refusal(with(R"({"process": {"consoleSize": {"height": 24}}})")),
            "process.consoleSize.width: required");
}

TEST(SpecParseTest, HostnameNeedsAUtsNamespace) {
  EXPECT_EQ(refusal(with(R"({"hostname": "box"})")),
            "hostname: needs a uts namespace in linux.namespaces (it would otherwise rename the host)");
  EXPECT_EQ(refusal(with(R"({"domainname": "example.org"})")),
            "domainname: needs a uts namespace in linux.namespaces (it would otherwise rename the host)");
  auto spec =
      parse(with(R"({"hostname": "box", "linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}]}})"));
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->hostname, "box");
  EXPECT_EQ(
      refusal(with(R"({"hostname": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})")),
      "hostname: longer than 64 bytes");
}

TEST(SpecParseTest, MountsNeedAMountNamespace) {
  json j = minimal();
  j["linux"]["namespaces"] = json::array();
  EXPECT_TRUE(parse(j).ok());
  j["mounts"] = {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}}};
  EXPECT_EQ(
      refusal(j),
      "mounts: needs a mount namespace in linux.namespaces (it would otherwise change the host's mounts)");
  j.erase("mounts");
  j["linux"]["maskedPaths"] = {"/proc/kcore"};
  EXPECT_EQ(refusal(j).rfind("linux.maskedPaths: needs a mount namespace", 0), 0u);
}

TEST(SpecParseTest, Annotations) {
  auto spec = parse(with(R"({"annotations": {"org.example.key": "value", "b": ""}})"));
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->annotations.at("org.example.key"), "value");
  EXPECT_EQ(refusal(with(R"({"annotations": {"": "x"}})")), "annotations: keys must not be empty");
}

// ---- process details ------------------------------------------------------------------------

TEST(SpecProcessTest, CapabilitiesBecomeNumbers) {
  auto spec = parse(with(R"({"process": {"capabilities": {"bounding": ["CAP_SYS_ADMIN", "CAP_CHOWN"],
      "ambient": ["CAP_NET_RAW"]}}})"));
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  ASSERT_TRUE(spec->process->capabilities);
  EXPECT_EQ(spec->process->capabilities->bounding, (std::vector<int>{21, 0}));
  EXPECT_EQ(spec->process->capabilities->ambient, std::vector<int>{13});
  EXPECT_TRUE(spec->process->capabilities->effective.empty());

  EXPECT_EQ(refusal(with(R"({"process": {"capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID",
      "CAP_FOO"]}}})")),
            "process.capabilities.bounding[3]: unknown capability \"CAP_FOO\"");
  EXPECT_EQ(refusal(with(R"({"process": {"capabilities": {"effective": ["chown"]}}})")),
            "process.capabilities.effective[0]: unknown capability \"chown\"");
  EXPECT_EQ(refusal(with(R"({"process": {"capabilities": {"all": []}}})")),
            "unknown field \"process.capabilities.all\"");

  // Present but empty is "no capabilities", which is not the same as absent in the struct.
  spec = parse(with(R"({"process": {"capabilities": {}}})"));
  ASSERT_TRUE(spec.ok());
  EXPECT_TRUE(spec->process->capabilities);
}

// (uid_t)-1 is "unchanged" to setresuid: a config asking for uid 4294967295 would run as the
// runtime's root. runc refuses every id past INT32_MAX; so do we, wherever an id is taken.
TEST(SpecProcessTest, UserIdsPastInt32MaxAreRefused) {
  EXPECT_EQ(refusal(with(R"({"process": {"user": {"uid": 4294967295, "gid": 0}}})")),
            "process.user.uid: 4294967295 is out of range (ids are 0 to 2147483647)");
  EXPECT_EQ(refusal(with(R"({"process": {"user": {"uid": 0, "gid": 4294967295}}})")),
            "process.user.gid: 4294967295 is out of range (ids are 0 to 2147483647)");
  EXPECT_EQ(
      refusal(with(R"({"process": {"user": {"uid": 0, "gid": 0, "additionalGids": [1, 2147483648]}}})")),
      "process.user.additionalGids[1]: 2147483648 is out of range (ids are 0 to 2147483647)");
  EXPECT_TRUE(parse(with(R"({"process": {"user": {"uid": 2147483647, "gid": 2147483647}}})")).ok());
  auto exec = parse_process(R"({"user": {"uid": 4294967295, "gid": 0}, "args": ["sh"], "cwd": "/"})");
  ASSERT_FALSE(exec.ok());
  EXPECT_NE(exec.error().message().find("out of range"), std::string::npos);
  EXPECT_NE(refusal(with(R"({"linux": {"devices": [{"type": "c", "path": "/dev/x", "major": 1, "minor": 3,
      "uid": 4294967295}]}})"))
                .find("uid: 4294967295 is out of range"),
            std::string::npos);
}

TEST(SpecProcessTest, Rlimits) {
  auto spec = parse(with(R"({"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 1024},
      {"type": "RLIMIT_CORE", "hard": 18446744073709551615, "soft": 18446744073709551615}]}})"));
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  ASSERT_EQ(spec->process->rlimits.size(), 2u);
  EXPECT_EQ(spec->process->rlimits[0].resource, RLIMIT_NOFILE);
  EXPECT_EQ(spec->process->rlimits[1].resource, RLIMIT_CORE);
  EXPECT_EQ(spec->process->rlimits[1].hard, UINT64_MAX);

  EXPECT_EQ(refusal(with(R"({"process": {"rlimits": [{"type": "RLIMIT_FOO", "hard": 1, "soft": 1}]}})")),
            "process.rlimits[0].type: unknown rlimit \"RLIMIT_FOO\"");
  EXPECT_EQ(refusal(with(R"({"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 2}]}})")),
            "process.rlimits[0]: soft limit 2 is above the hard limit 1");
  EXPECT_EQ(refusal(with(R"({"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1},
      {"type": "RLIMIT_NOFILE", "hard": 2, "soft": 2}]}})")),
            "process.rlimits[1].type: duplicate rlimit \"RLIMIT_NOFILE\"");
  EXPECT_EQ(refusal(with(R"({"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1}]}})")),
            "process.rlimits[0].soft: required");
}

TEST(SpecProcessTest, ParseProcessForExec) {
  auto p = parse_process(R"({"user": {"uid": 1, "gid": 2}, "args": ["ps"], "env": ["A=b"],
      "capabilities": {"bounding": ["CAP_KILL"]}, "apparmorProfile": "x"})");
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->user.uid, 1u);
  EXPECT_EQ(p->cwd, "/");  // optional for exec
  EXPECT_EQ(p->apparmor_profile, "x");
  EXPECT_EQ(parse_process(R"({"user": {"uid": 0, "gid": 0}, "args": []})").error().message(),
            "args: must not be empty");
  EXPECT_EQ(parse_process(R"({"user": {"uid": 0, "gid": 0}, "args": ["a"], "x": 1})").error().message(),
            "unknown field \"x\"");
  EXPECT_EQ(parse_process("[").error().message().rfind("parse process.json: ", 0), 0u);
  EXPECT_EQ(parse_process("[]").error().message(), "process.json: expected an object, got an array");
}

// ---- linux: namespaces and mappings -------------------------------------------------------

TEST(SpecLinuxTest, Namespaces) {
  auto spec = parse(with(R"({"linux": {"namespaces": [{"type": "mount"}, {"type": "network", "path":
      "/run/netns/a"}, {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "cgroup"},
      {"type": "time"}]}})"));
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->linux.namespaces.size(), 7u);
  EXPECT_EQ(spec->linux.find_namespace(NamespaceType::kNetwork)->path, "/run/netns/a");
  EXPECT_TRUE(spec->linux.find_namespace(NamespaceType::kPid)->path.empty());

  EXPECT_EQ(refusal(with(R"({"linux": {"namespaces": [{"type": "mount"}, {"type": "foo"}]}})")),
            "linux.namespaces[1].type: unknown namespace type \"foo\"");
  EXPECT_EQ(refusal(with(R"({"linux": {"namespaces": [{"type": "mount"}, {"type": "mount"}]}})")),
            "linux.namespaces[1].type: duplicate namespace \"mount\"");
  EXPECT_EQ(refusal(with(R"({"linux": {"namespaces": [{"type": "mount", "path": "proc/1/ns/mnt"}]}})")),
            "linux.namespaces[0].path: must be an absolute path, got \"proc/1/ns/mnt\"");
  EXPECT_EQ(refusal(with(R"({"linux": {"namespaces": [{"path": "/x"}]}})")),
            "linux.namespaces[0].type: required");
}

json user_ns(const char* uid_maps, const char* gid_maps) {
  json j = minimal();
  j["linux"]["namespaces"] = json::parse(R"([{"type": "mount"}, {"type": "user"}])");
  if (uid_maps) j["linux"]["uidMappings"] = json::parse(uid_maps);
  if (gid_maps) j["linux"]["gidMappings"] = json::parse(gid_maps);
  return j;
}

TEST(SpecLinuxTest, IdMappings) {
  const char* one = R"([{"containerID": 0, "hostID": 1000, "size": 1}])";
  auto spec = parse(user_ns(R"([{"containerID": 0, "hostID": 100000, "size": 1000},
      {"containerID": 1000, "hostID": 1000, "size": 1}])",
                            one));
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  ASSERT_EQ(spec->linux.uid_mappings.size(), 2u);
  EXPECT_EQ(spec->linux.uid_mappings[0].host_id, 100000u);
  EXPECT_EQ(spec->linux.uid_mappings[0].size, 1000u);

  EXPECT_EQ(refusal(user_ns(R"([{"containerID": 0, "hostID": 1, "size": 0}])", one)),
            "linux.uidMappings[0].size: must be greater than zero");
  EXPECT_EQ(refusal(user_ns(R"([{"containerID": 0, "hostID": 1}])", one)),
            "linux.uidMappings[0].size: required");
  EXPECT_EQ(refusal(user_ns(R"([{"containerID": 1, "hostID": 4294967295, "size": 2}])", one)),
            "linux.uidMappings[0].hostID: 4294967295 is out of range (ids are 0 to 2147483647)");
  EXPECT_EQ(refusal(user_ns(R"([{"containerID": 2147483648, "hostID": 0, "size": 1}])", one)),
            "linux.uidMappings[0].containerID: 2147483648 is out of range (ids are 0 to 2147483647)");
  EXPECT_EQ(refusal(user_ns(R"([{"containerID": 0, "hostID": 2147483647, "size": 2147483649}])", one)),
            "linux.uidMappings[0]: range runs onto id 4294967295 ((uid_t)-1, not an id)");
  // The widest mapping that stays clear of (uid_t)-1.
  EXPECT_TRUE(parse(user_ns(R"([{"containerID": 0, "hostID": 0, "size": 4294967295}])", one)).ok());
  EXPECT_EQ(
      refusal(user_ns(R"([{"containerID": 0, "hostID": 10, "size": 10}, {"containerID": 5, "hostID": 100,
      "size": 1}])",
                      one)),
      "linux.uidMappings[1]: container ids overlap linux.uidMappings[0]");
  EXPECT_EQ(
      refusal(user_ns(one, R"([{"containerID": 0, "hostID": 10, "size": 10}, {"containerID": 50, "hostID":
      19, "size": 1}])")),
      "linux.gidMappings[1]: host ids overlap linux.gidMappings[0]");
  EXPECT_EQ(refusal(user_ns(nullptr, one)), "linux.uidMappings: required with a new user namespace");
  EXPECT_EQ(refusal(user_ns(one, nullptr)), "linux.gidMappings: required with a new user namespace");

  json no_userns = minimal();
  no_userns["linux"]["uidMappings"] = json::parse(one);
  EXPECT_EQ(refusal(no_userns), "linux.uidMappings: needs a user namespace in linux.namespaces");

  json joined = user_ns(one, one);
  joined["linux"]["namespaces"][1]["path"] = "/proc/42/ns/user";
  EXPECT_EQ(
      refusal(joined),
      "linux.uidMappings: cannot be applied to an existing user namespace (linux.namespaces has a path)");
  joined["linux"].erase("uidMappings");
  joined["linux"].erase("gidMappings");
  EXPECT_TRUE(parse(joined).ok());
}

TEST(SpecLinuxTest, TimeOffsetsNeedANewTimeNamespace) {
  json j = with(
      R"({"linux": {"timeOffsets": {"monotonic": {"secs": 10}, "boottime": {"secs": -5, "nanosecs": 0}}}})");
  EXPECT_EQ(refusal(j), "linux.timeOffsets: needs a new time namespace in linux.namespaces");
  j["linux"]["namespaces"].push_back({{"type", "time"}});
  auto spec = parse(j);
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->linux.time_offsets.at("monotonic"), 10);
  EXPECT_EQ(spec->linux.time_offsets.at("boottime"), -5);

  j["linux"]["timeOffsets"]["monotonic"]["nanosecs"] = 5;
  EXPECT_EQ(refusal(j), "linux.timeOffsets.monotonic.nanosecs: not supported (whole seconds only)");
  j["linux"]["timeOffsets"] = {{"realtime", {{"secs", 1}}}};
  EXPECT_EQ(refusal(j), "linux.timeOffsets.realtime: unknown clock (expected monotonic or boottime)");
}

// ---- linux: devices ---------------------------------------------------------------------

TEST(SpecLinuxTest, Devices) {
  auto spec = parse(with(R"({"linux": {"devices": [
      {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 5},
      {"type": "p", "path": "/dev/fifo"}]}})"));
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  ASSERT_EQ(spec->linux.devices.size(), 2u);
  EXPECT_EQ(spec->linux.devices[0].type, 'c');
  EXPECT_EQ(spec->linux.devices[0].major, 10);
  EXPECT_EQ(spec->linux.devices[0].minor, 229);
  EXPECT_EQ(spec->linux.devices[0].file_mode, 0666u);
  EXPECT_EQ(spec->linux.devices[0].gid, 5u);
  EXPECT_FALSE(spec->linux.devices[1].uid);

  auto dev = [](const char* d) {
    return with((std::string(R"({"linux": {"devices": [)") + d + "]}}").c_str());
  };
  EXPECT_EQ(refusal(dev(R"({"type": "x", "path": "/dev/a", "major": 1, "minor": 1})")),
            "linux.devices[0].type: unknown device type \"x\" (expected c, b, u or p)");
  EXPECT_EQ(refusal(dev(R"({"type": "c", "path": "/etc/shadow", "major": 1, "minor": 1})")),
            "linux.devices[0].path: must be an absolute path under /dev, got \"/etc/shadow\"");
  EXPECT_EQ(refusal(dev(R"({"type": "c", "path": "/dev/../etc/x", "major": 1, "minor": 1})")),
            "linux.devices[0].path: must be an absolute path under /dev, got \"/dev/../etc/x\"");
  EXPECT_EQ(refusal(dev(R"({"type": "c", "path": "/dev/", "major": 1, "minor": 1})")),
            "linux.devices[0].path: must be an absolute path under /dev, got \"/dev/\"");
  EXPECT_EQ(refusal(dev(R"({"type": "c", "path": "/dev/a", "minor": 1})")),
            "linux.devices[0].major: required for a device of type c");
  EXPECT_EQ(refusal(dev(R"({"type": "b", "path": "/dev/a", "major": 1})")),
            "linux.devices[0].minor: required for a device of type b");
  EXPECT_EQ(refusal(dev(R"({"type": "c", "path": "/dev/a", "major": -1, "minor": 1})")),
            "linux.devices[0].major: -1 is not a major number (0..4095)");
  EXPECT_EQ(refusal(dev(R"({"type": "c", "path": "/dev/a", "major": 1, "minor": 1, "fileMode": 65535})")),
            "linux.devices[0].fileMode: 65535 has bits outside the permission bits (07777)");
  EXPECT_EQ(refusal(dev(R"({"type": "c", "path": "/dev/a", "major": 1, "minor": 1},
      {"type": "c", "path": "/dev/a", "major": 1, "minor": 2})")),
            "linux.devices[1].path: duplicate device \"/dev/a\"");
}

// ---- linux: resources -------------------------------------------------------------------

TEST(SpecResourcesTest, Everything) {
  auto spec = parse(with(R"({"linux": {"resources": {
      "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3,
                   "access": "rw"}, {"allow": true, "type": "b", "major": 8}],
      "memory": {"limit": 9223372036854775807, "reservation": 1, "swap": -1, "kernel": -1, "swappiness": 60,
                 "disableOOMKiller": true},
      "cpu": {"shares": 512, "quota": -1, "period": 100000, "realtimeRuntime": 1, "realtimePeriod": 2,
              "cpus": "0-3,7", "mems": "0", "idle": 1},
      "pids": {"limit": -1},
      "blockIO": {"weight": 10, "leafWeight": 1000},
      "hugepageLimits": [{"pageSize": "2MB", "limit": 1073741824}],
      "unified": {"memory.high": "max"}}}})"));
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  const Resources& r = *spec->linux.resources;
  ASSERT_EQ(r.devices.size(), 3u);
  EXPECT_EQ(r.devices[0].type, 'a');
  EXPECT_FALSE(r.devices[0].major);
  EXPECT_EQ(r.devices[1].minor, 3);
  EXPECT_EQ(r.devices[2].access, "rwm");
  EXPECT_EQ(r.memory->limit, INT64_MAX);
  EXPECT_EQ(r.memory->swap, -1);
  EXPECT_EQ(r.memory->swappiness, 60u);
  EXPECT_EQ(r.memory->disable_oom_killer, true);
  EXPECT_EQ(r.cpu->shares, 512u);
  EXPECT_EQ(r.cpu->quota, -1);
  EXPECT_EQ(r.cpu->cpus, "0-3,7");
  EXPECT_EQ(r.cpu->idle, 1);
  EXPECT_EQ(r.pids_limit, -1);
  EXPECT_EQ(r.block_io->weight, 10);
  EXPECT_EQ(r.hugepage_limits[0].page_size, "2MB");
  EXPECT_EQ(r.unified.at("memory.high"), "max");
}

TEST(SpecResourcesTest, PartialObjectsAreFine) {
  auto spec = parse(with(R"({"linux": {"resources": {"memory": {"limit": 1048576}}}})"));
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->linux.resources->memory->limit, 1048576);
  EXPECT_FALSE(spec->linux.resources->memory->swap);
  EXPECT_FALSE(spec->linux.resources->cpu);
  EXPECT_FALSE(spec->linux.resources->pids_limit);
}

TEST(SpecResourcesTest, SwappinessMinusOneMeansUnset) {
  for (const char* v : {"-1", "18446744073709551615"}) {
    auto spec = parse(
        with((std::string(R"({"linux": {"resources": {"memory": {"swappiness": )") + v + "}}}}").c_str()));
    ASSERT_TRUE(spec.ok()) << spec.error().message();
    EXPECT_FALSE(spec->linux.resources->memory->swappiness) << v;
  }
  EXPECT_EQ(refusal(with(R"({"linux": {"resources": {"memory": {"swappiness": 101}}}})")),
            "linux.resources.memory.swappiness: 101 is out of range (0..100)");
}

TEST(SpecResourcesTest, Refusals) {
  struct {
    const char* resources;
    const char* error;
  } cases[] = {
      {R"({"memory": {"limit": -2}})",
       "linux.resources.memory.limit: -2 is neither a byte count nor -1 (unlimited)"},
      {R"({"memory": {"limit": 9223372036854775808}})",
       "linux.resources.memory.limit: 9223372036854775808 is out of range "
       "(-9223372036854775808..9223372036854775807)"},
      {R"({"memory": {"limit": "1G"}})", "linux.resources.memory.limit: expected an integer, got \"1G\""},
      {R"({"cpu": {"cpus": "0-3;5"}})",
       "linux.resources.cpu.cpus: \"0-3;5\" is not a list of ranges like \"0-3,7\""},
      {R"({"cpu": {"idle": 2}})", "linux.resources.cpu.idle: 2 is not 0 or 1"},
      {R"({"pids": {}})", "linux.resources.pids.limit: required"},
      {R"({"pids": {"limit": -5}})", "linux.resources.pids.limit: -5 is neither a count nor -1 (unlimited)"},
      {R"({"blockIO": {"weight": 5}})", "linux.resources.blockIO.weight: 5 is out of range (10..1000)"},
      {R"({"blockIO": {"weight": 70000}})",
       "linux.resources.blockIO.weight: 70000 is out of range (0..65535)"},
      {R"({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]})",
       "linux.resources.hugepageLimits[0].pageSize: \"2M\" is not a page size like \"2MB\""},
      {R"({"unified": {"../../cgroup.procs": "1"}})",
       "linux.resources.unified: \"../../cgroup.procs\" is not a cgroup file name"},
      {R"({"unified": {"..": "1"}})", "linux.resources.unified: \"..\" is not a cgroup file name"},
      {R"({"devices": [{"access": "rwm"}]})", "linux.resources.devices[0].allow: required"},
      {R"({"devices": [{"allow": true, "type": "u"}]})",
       "linux.resources.devices[0].type: unknown device rule type \"u\" (expected a, c or b)"},
      {R"({"devices": [{"allow": true, "access": "rwx"}]})",
       "linux.resources.devices[0].access: \"rwx\" is not a combination of r, w and m"},
      {R"({"devices": [{"allow": true, "access": "rr"}]})",
       "linux.resources.devices[0].access: \"rr\" is not a combination of r, w and m"},
  };
  for (const auto& c : cases) {
    json j = minimal();
    j["linux"]["resources"] = json::parse(c.resources);
    EXPECT_EQ(refusal(j), c.error) << c.resources;
  }
}

TEST(SpecLinuxTest, CgroupsPathMustNotClimb) {
  auto spec = parse(with(R"({"linux": {"cgroupsPath": "machine.slice:libpod:abc"}})"));
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->linux.cgroups_path, "machine.slice:libpod:abc");
  EXPECT_EQ(refusal(with(R"({"linux": {"cgroupsPath": "/strata/../../etc"}})")),
            "linux.cgroupsPath: \"/strata/../../etc\" must not contain \"..\"");
}

// ---- linux: sysctl, seccomp, propagation, paths -----------------------------------------

TEST(SpecLinuxTest, SysctlsMustBeNamespacedByTheContainer) {
  json j = with(R"({"linux": {"namespaces": [{"type": "mount"}, {"type": "network"}, {"type": "ipc"},
      {"type": "uts"}], "sysctl": {"net.ipv4.ip_forward": "1", "net/core/somaxconn": "1024",
      "kernel.shmmax": "1", "fs.mqueue.msg_max": "10", "kernel.domainname": "x"}}})");
  auto spec = parse(j);
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->linux.sysctl.size(), 5u);

  EXPECT_EQ(refusal(with(R"({"linux": {"sysctl": {"net.ipv4.ip_forward": "1"}}})")),
            "linux.sysctl: \"net.ipv4.ip_forward\" needs a network namespace in linux.namespaces (it would "
            "otherwise change the host)");
  EXPECT_EQ(
      refusal(with(R"({"linux": {"sysctl": {"kernel.msgmax": "1"}}})")),
      "linux.sysctl: \"kernel.msgmax\" needs an ipc namespace in linux.namespaces (it would otherwise change "
      "the host)");
  EXPECT_EQ(refusal(with(R"({"linux": {"sysctl": {"kernel.hostname": "x"}}})")),
            "linux.sysctl: \"kernel.hostname\" needs a uts namespace in linux.namespaces (it would otherwise "
            "change "
            "the host)");
  EXPECT_EQ(refusal(with(R"({"linux": {"sysctl": {"vm.swappiness": "1"}}})")),
            "linux.sysctl: \"vm.swappiness\" is not namespaced; setting it would change the host");
  EXPECT_EQ(refusal(with(R"({"linux": {"sysctl": {"net/../../x": "1"}}})")),
            "linux.sysctl: \"net/../../x\" is not a sysctl name");
  EXPECT_EQ(refusal(with(R"({"linux": {"sysctl": {"": "1"}}})")), "linux.sysctl: \"\" is not a sysctl name");
}

TEST(SpecSeccompTest, FullProfile) {
  auto spec = parse(with(R"({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_KILL_PROCESS",
      "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"], "flags": ["SECCOMP_FILTER_FLAG_LOG"],
      "syscalls": [{"names": ["getcwd", "chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                   {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 1},
                   {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 9,
                    "valueTwo": 0, "op": "SCMP_CMP_NE"}, {"index": 5, "value": 18446744073709551615,
                    "op": "SCMP_CMP_MASKED_EQ"}]},
                   {"names": ["reboot"], "action": "SCMP_ACT_LOG"}]}}})"));
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  const Seccomp& s = *spec->linux.seccomp;
  EXPECT_EQ(s.default_action, "SCMP_ACT_KILL_PROCESS");
  EXPECT_FALSE(s.default_errno_ret);
  EXPECT_EQ(s.architectures.size(), 2u);
  EXPECT_EQ(s.flags, std::vector<std::string>{"SECCOMP_FILTER_FLAG_LOG"});
  ASSERT_EQ(s.syscalls.size(), 4u);
  EXPECT_EQ(s.syscalls[0].names, (std::vector<std::string>{"getcwd", "chmod"}));
  EXPECT_EQ(s.syscalls[0].errno_ret, 13u);
  EXPECT_EQ(s.syscalls[2].args[1].index, 5u);
  EXPECT_EQ(s.syscalls[2].args[1].value, UINT64_MAX);
  EXPECT_TRUE(s.listener_path.empty());
}

TEST(SpecSeccompTest, Refusals) {
  struct {
    const char* seccomp;
    const char* error;
  } cases[] = {
      {R"({"syscalls": []})", "linux.seccomp.defaultAction: required"},
      {R"({"defaultAction": "SCMP_ACT_FOO"})",
       "linux.seccomp.defaultAction: unknown seccomp action \"SCMP_ACT_FOO\""},
      {R"({"defaultAction": "SCMP_ACT_NOTIFY"})",
       "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY is not supported (no seccomp notify agent support)"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1})",
       "linux.seccomp.defaultErrnoRet: only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not "
       "SCMP_ACT_ALLOW"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]})",
       "linux.seccomp.architectures[0]: unknown seccomp architecture \"SCMP_ARCH_Z80\""},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_X"]})",
       "linux.seccomp.flags[0]: unknown seccomp flag \"SECCOMP_FILTER_FLAG_X\""},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"})",
       "linux.seccomp.listenerMetadata: not supported (no seccomp notify agent support)"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW",
          "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]})",
       "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY is not supported (no seccomp notify agent "
       "support)"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]})",
       "linux.seccomp.syscalls[0].names: must not be empty"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW",
          "syscalls": [{"names": ["a", ""], "action": "SCMP_ACT_ERRNO"}]})",
       "linux.seccomp.syscalls[0].names[1]: must not be empty"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"]}]})",
       "linux.seccomp.syscalls[0].action: required"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_KILL",
          "errnoRet": 1}]})",
       "linux.seccomp.syscalls[0].errnoRet: only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not "
       "SCMP_ACT_KILL"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO",
          "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]})",
       "linux.seccomp.syscalls[0].args[0].index: 6 is not a syscall argument (0..5)"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO",
          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]}]})",
       "linux.seccomp.syscalls[0].args[0].op: unknown seccomp operator \"SCMP_CMP_FOO\""},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO",
          "args": [{"index": 0, "op": "SCMP_CMP_EQ"}]}]})",
       "linux.seccomp.syscalls[0].args[0].value: required"},
      {R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ERRNO",
          "comment": "x"}]})",
       "unknown field \"linux.seccomp.syscalls[0].comment\""},
  };
  for (const auto& c : cases) {
    json j = minimal();
    j["linux"]["seccomp"] = json::parse(c.seccomp);
    EXPECT_EQ(refusal(j), c.error) << c.seccomp;
  }
}

TEST(SpecLinuxTest, RootfsPropagation) {
  struct {
    const char* name;
    unsigned long flags;
  } cases[] = {{"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
               {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
               {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
               {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC}};
  for (const auto& c : cases) {
    json j = minimal();
    j["linux"]["rootfsPropagation"] = c.name;
    auto spec = parse(j);
    ASSERT_TRUE(spec.ok()) << spec.error().message();
    EXPECT_EQ(spec->linux.rootfs_propagation, c.flags) << c.name;
  }
  EXPECT_EQ(parse(minimal())->linux.rootfs_propagation, 0u);
  EXPECT_EQ(refusal(with(R"({"linux": {"rootfsPropagation": "rbind"}})")),
            "linux.rootfsPropagation: unknown propagation \"rbind\"");
}

TEST(SpecLinuxTest, MaskedAndReadonlyPathsAreAbsolute) {
  EXPECT_EQ(refusal(with(R"({"linux": {"maskedPaths": ["/proc/kcore", "proc/keys"]}})")),
            "linux.maskedPaths[1]: must be an absolute path, got \"proc/keys\"");
  EXPECT_EQ(refusal(with(R"({"linux": {"readonlyPaths": [""]}})")),
            "linux.readonlyPaths[0]: must be an absolute path, got \"\"");
}

// ---- mounts -----------------------------------------------------------------------------

Result<Mount> one_mount(const char* m) {
  json j = minimal();
  j["mounts"] = json::array({json::parse(m)});
  auto spec = parse(j);
  if (!spec) return std::move(spec).error();
  return spec->mounts.at(0);
}

TEST(SpecMountTest, OptionsBecomeFlagsPropagationAndData) {
  auto m = one_mount(R"({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
      "options": ["nosuid", "strictatime", "mode=755", "size=65536k", "noexec", "rslave"]})");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->flags, static_cast<unsigned long>(MS_NOSUID | MS_STRICTATIME | MS_NOEXEC));
  EXPECT_EQ(m->clear_flags, 0u);
  EXPECT_EQ(m->propagation, static_cast<unsigned long>(MS_SLAVE | MS_REC));
  EXPECT_EQ(m->data, "mode=755,size=65536k");
  EXPECT_FALSE(m->is_bind());
  EXPECT_EQ(m->options.size(), 6u);  // kept as written
}

TEST(SpecMountTest, EveryFlagOption) {
  struct {
    const char* option;
    unsigned long set;
    unsigned long clear;
  } cases[] = {
      {"ro", MS_RDONLY, 0},
      {"rw", 0, MS_RDONLY},
      {"nosuid", MS_NOSUID, 0},
      {"suid", 0, MS_NOSUID},
      {"nodev", MS_NODEV, 0},
      {"dev", 0, MS_NODEV},
      {"noexec", MS_NOEXEC, 0},
      {"exec", 0, MS_NOEXEC},
      {"sync", MS_SYNCHRONOUS, 0},
      {"async", 0, MS_SYNCHRONOUS},
      {"dirsync", MS_DIRSYNC, 0},
      {"remount", MS_REMOUNT, 0},
      {"mand", MS_MANDLOCK, 0},
      {"nomand", 0, MS_MANDLOCK},
      {"noatime", MS_NOATIME, 0},
      {"atime", 0, MS_NOATIME},
      {"nodiratime", MS_NODIRATIME, 0},
      {"diratime", 0, MS_NODIRATIME},
      {"relatime", MS_RELATIME, 0},
      {"norelatime", 0, MS_RELATIME},
      {"strictatime", MS_STRICTATIME, 0},
      {"nostrictatime", 0, MS_STRICTATIME},
      {"nosymfollow", MS_NOSYMFOLLOW, 0},
      {"symfollow", 0, MS_NOSYMFOLLOW},
      {"lazytime", MS_LAZYTIME, 0},
      {"iversion", MS_I_VERSION, 0},
      {"defaults", 0, 0},
  };
  for (const auto& c : cases) {
    json mj = {{"destination", "/x"}, {"type", "tmpfs"}, {"options", {c.option}}};
    auto m = one_mount(mj.dump().c_str());
    ASSERT_TRUE(m.ok()) << m.error().message();
    EXPECT_EQ(m->flags, c.set) << c.option;
    EXPECT_EQ(m->clear_flags, c.clear) << c.option;
    EXPECT_EQ(m->data, "") << c.option;
  }
}

TEST(SpecMountTest, LaterOptionsWin) {
  auto m = one_mount(R"({"destination": "/x", "type": "tmpfs", "options": ["ro", "rw", "nosuid", "suid",
      "exec", "noexec", "shared", "private"]})");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->flags, static_cast<unsigned long>(MS_NOEXEC));
  EXPECT_EQ(m->clear_flags, static_cast<unsigned long>(MS_RDONLY | MS_NOSUID));
  EXPECT_EQ(m->propagation, static_cast<unsigned long>(MS_PRIVATE));
}

TEST(SpecMountTest, BindMounts) {
  auto m = one_mount(R"({"destination": "/data", "source": "/srv", "options": ["rbind", "ro"]})");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_TRUE(m->is_bind());
  EXPECT_EQ(m->flags, static_cast<unsigned long>(MS_BIND | MS_REC | MS_RDONLY));

  m = one_mount(R"({"destination": "/data", "type": "bind", "source": "/srv"})");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_TRUE(m->is_bind());
  EXPECT_EQ(m->flags, static_cast<unsigned long>(MS_BIND));

  m = one_mount(R"({"destination": "/data", "type": "none", "source": "/srv", "options": ["bind"]})");
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->is_bind());

  EXPECT_EQ(one_mount(R"({"destination": "/data", "type": "bind"})").error().message(),
            "mounts[0].source: required for a bind mount");
  EXPECT_EQ(one_mount(R"({"destination": "/data", "source": "x"})").error().message(),
            "mounts[0].type: required unless the mount is a bind mount");

  Mount by_hand;
  by_hand.type = "bind";
  EXPECT_TRUE(by_hand.is_bind());
  by_hand.type = "tmpfs";
  EXPECT_FALSE(by_hand.is_bind());
}

TEST(SpecMountTest, RecursiveAttributes) {
  auto m = one_mount(R"({"destination": "/d", "source": "/s", "options": ["rbind", "rro", "rnosuid", "rnodev",
      "rnoexec", "rnodiratime", "rnosymfollow", "rnoatime"]})");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->rec_attr_set, static_cast<uint64_t>(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                                   MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NODIRATIME |
                                                   MOUNT_ATTR_NOSYMFOLLOW | MOUNT_ATTR_NOATIME));
  EXPECT_EQ(m->rec_attr_clr, static_cast<uint64_t>(MOUNT_ATTR__ATIME));
  EXPECT_EQ(m->flags, static_cast<unsigned long>(MS_BIND | MS_REC));

  m = one_mount(R"({"destination": "/d", "source": "/s", "options": ["rbind", "rro", "rrw", "rexec",
      "rstrictatime"]})");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->rec_attr_set, static_cast<uint64_t>(MOUNT_ATTR_STRICTATIME));
  EXPECT_EQ(m->rec_attr_clr,
            static_cast<uint64_t>(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC | MOUNT_ATTR__ATIME));

  EXPECT_EQ(
      one_mount(R"({"destination": "/d", "source": "/s", "options": ["rbind", "ratime"]})").error().message(),
      "mounts[0].options[1]: \"ratime\" is not supported (say rrelatime, rnoatime or rstrictatime)");
}

TEST(SpecMountTest, Extensions) {
  auto m = one_mount(R"({"destination": "/tmp", "type": "tmpfs", "options": ["tmpcopyup", "size=1m"]})");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_TRUE(m->tmpcopyup);
  EXPECT_EQ(m->data, "size=1m");
  EXPECT_EQ(one_mount(R"({"destination": "/x", "source": "/y", "options": ["bind", "tmpcopyup"]})")
                .error()
                .message(),
            "mounts[0].options[1]: tmpcopyup only applies to tmpfs mounts");
  EXPECT_EQ(
      one_mount(R"({"destination": "/x", "source": "/y", "options": ["bind", "idmap"]})").error().message(),
      "mounts[0].options[1]: \"idmap\" is not supported (no idmapped mounts)");
  EXPECT_EQ(one_mount(R"({"destination": "/x", "type": "tmpfs", "options": ["ro", ""]})").error().message(),
            "mounts[0].options[1]: empty mount option");
  m = one_mount(R"({"destination": "/tmp", "type": "tmpfs", "options": ["tmpcopyup", "notmpcopyup"]})");
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_FALSE(m->tmpcopyup);
  EXPECT_EQ(
      one_mount(R"({"destination": "/x", "source": "/y", "options": ["rbind", "ro", "mode=755", "foo"]})")
          .error()
          .message(),
      "mounts[0].options: \"mode=755,foo\" cannot be applied to a bind mount");
}

TEST(SpecMountTest, DestinationMustBeAbsolute) {
  EXPECT_EQ(
      one_mount(R"({"destination": "proc", "type": "proc"})").error().message(),
      "mounts[0].destination: must be an absolute path, got \"proc\" (the runtime-spec tolerates relative "
      "destinations; strata does not)");
  EXPECT_EQ(one_mount(R"({"type": "proc"})").error().message(), "mounts[0].destination: required");
}

// ---- hooks ------------------------------------------------------------------------------

TEST(SpecHooksTest, AllSixKinds) {
  auto spec = parse(with(R"({"hooks": {
      "prestart": [{"path": "/a"}], "createRuntime": [{"path": "/b", "args": ["b", "1"], "env": ["X=1"]}],
      "createContainer": [{"path": "/c", "timeout": 3}], "startContainer": [{"path": "/d"}],
      "poststart": [{"path": "/e"}, {"path": "/f"}], "poststop": [{"path": "/g"}]}})"));
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  const Hooks& h = spec->hooks;
  EXPECT_EQ(h.prestart[0].path, "/a");
  EXPECT_EQ(h.create_runtime[0].args, (std::vector<std::string>{"b", "1"}));
  EXPECT_EQ(h.create_runtime[0].env, std::vector<std::string>{"X=1"});
  EXPECT_EQ(h.create_container[0].timeout_s, 3);
  EXPECT_FALSE(h.start_container[0].timeout_s);
  EXPECT_EQ(h.poststart.size(), 2u);
  EXPECT_EQ(h.poststop[0].path, "/g");
}

TEST(SpecHooksTest, Refusals) {
  EXPECT_EQ(refusal(with(R"({"hooks": {"prestart": [{"path": "hook"}]}})")),
            "hooks.prestart[0].path: must be an absolute path, got \"hook\"");
  EXPECT_EQ(refusal(with(R"({"hooks": {"poststop": [{"path": "/h", "timeout": 0}]}})")),
            "hooks.poststop[0].timeout: must be greater than zero, got 0");
  EXPECT_EQ(refusal(with(R"({"hooks": {"poststop": [{"path": "/h", "env": ["X"]}]}})")),
            "hooks.poststop[0].env[0]: expected NAME=VALUE, got \"X\"");
  EXPECT_EQ(refusal(with(R"({"hooks": {"prestop": []}})")), "unknown field \"hooks.prestop\"");
  EXPECT_EQ(refusal(with(R"({"hooks": {"poststart": [{"args": []}]}})")),
            "hooks.poststart[0].path: required");
}

// ---- load_spec --------------------------------------------------------------------------

class SpecLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-spec-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)fs::remove_tree(dir_); }
  std::string dir_;
};

TEST_F(SpecLoadTest, ReadsConfigJsonFromTheBundle) {
  ASSERT_TRUE(fs::write_file_atomic(dir_ + "/config.json", minimal().dump()).ok());
  auto spec = load_spec(dir_);
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->root.path, "rootfs");
}

TEST_F(SpecLoadTest, ErrorsNameTheFile) {
  auto r = load_spec(dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().to_string(), "open " + dir_ + "/config.json: ENOENT (No such file or directory)");

  ASSERT_TRUE(fs::write_file_atomic(dir_ + "/config.json", with(R"({"process": {"cwd": "x"}})").dump()).ok());
  r = load_spec(dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), dir_ + "/config.json: process.cwd: must be an absolute path, got \"x\"");
}

TEST_F(SpecLoadTest, RefusesWhatIsNotASmallRegularFile) {
  ASSERT_EQ(::mkdir((dir_ + "/config.json").c_str(), 0755), 0);
  EXPECT_EQ(load_spec(dir_).error().message(), "read " + dir_ + "/config.json: not a regular file");
  ASSERT_EQ(::rmdir((dir_ + "/config.json").c_str()), 0);
  ASSERT_EQ(::mkfifo((dir_ + "/config.json").c_str(), 0600), 0);
  EXPECT_EQ(load_spec(dir_).error().message(), "read " + dir_ + "/config.json: not a regular file");
  ASSERT_EQ(::unlink((dir_ + "/config.json").c_str()), 0);
  ASSERT_EQ(::symlink("/dev/zero", (dir_ + "/config.json").c_str()), 0);
  EXPECT_EQ(load_spec(dir_).error().message(), "read " + dir_ + "/config.json: not a regular file");
  ASSERT_EQ(::unlink((dir_ + "/config.json").c_str()), 0);
  ASSERT_TRUE(fs::write_file_atomic(dir_ + "/config.json", std::string(5 << 20, ' ')).ok());
  EXPECT_NE(load_spec(dir_).error().message().find("larger than"), std::string::npos);
}

// ---- the fuzzer's seed corpus -----------------------------------------------------------

std::string corpus_dir() {
  std::string here = __FILE__;
  return here.substr(0, here.rfind('/')) + "/fuzz/spec_fuzz_corpus";
}

std::string read(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// ok_* must parse, bad_* must be refused, process_* are exec process files; the two default
// templates are checked against what default_spec_json() writes today.
TEST(SpecCorpusTest, SeedsParseAsTheirNamesSay) {
  auto files = fs::list_dir(corpus_dir());
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 10u) << corpus_dir();
  for (const auto& name : files) {
    std::string text = read(corpus_dir() + "/" + name);
    SCOPED_TRACE(name);
    if (name.starts_with("ok_")) {
      auto spec = parse_spec(text);
      EXPECT_TRUE(spec.ok()) << spec.error().message();
    } else if (name.starts_with("bad_")) {
      auto spec = parse_spec(text);
      EXPECT_FALSE(spec.ok());
    } else if (name.starts_with("process_")) {
      auto p = parse_process(text);
      EXPECT_TRUE(p.ok()) << p.error().message();
    } else {
      ADD_FAILURE() << "seed names start with ok_, bad_ or process_";
    }
  }
  EXPECT_EQ(read(corpus_dir() + "/ok_default.json"), default_spec_json(false, 0, 0));
  EXPECT_EQ(read(corpus_dir() + "/ok_rootless.json"), default_spec_json(true, 1000, 1000));
}

}  // namespace
}  // namespace strata::oci
