#include "sandbox/vm_bundle.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/strings.h"

namespace strata::sandbox {
namespace {

using Json = nlohmann::json;

oci::Spec spec_with(std::vector<std::string> args) {
  oci::Spec s;
  s.process = oci::Process{};
  s.process->args = std::move(args);
  return s;
}

// The JSON strata-init gets in strata.cmd=.
Json decoded_cmd(const std::string& line) {
  auto pos = line.find("strata.cmd=");
  EXPECT_NE(pos, std::string::npos) << line;
  auto text = str::base64_decode(line.substr(pos + 11));
  EXPECT_TRUE(text.has_value());
  return Json::parse(text.value_or("{}"));
}

TEST(VmBundle, CmdlineCarriesTheProcess) {
  oci::Spec s = spec_with({"sh", "-c", "echo hi; exit 7"});
  s.process->env = {"PATH=/bin", "FOO=bar baz"};
  s.process->cwd = "/tmp";
  s.process->user.uid = 1000;
  s.process->user.gid = 100;
  s.process->user.additional_gids = {5, 6};
  s.hostname = "vm-a";
  auto line = init_cmdline(s);
  ASSERT_TRUE(line.ok()) << line.error().to_string();
  EXPECT_EQ(line->rfind("strata.root=/dev/vda ", 0), 0u) << *line;
  EXPECT_NE(line->find(" strata.hostname=vm-a "), std::string::npos);
  EXPECT_EQ(line->find("rootflags"), std::string::npos);
  Json cmd = decoded_cmd(*line);
  EXPECT_EQ(cmd["args"], Json({"sh", "-c", "echo hi; exit 7"}));
  EXPECT_EQ(cmd["env"], Json({"PATH=/bin", "FOO=bar baz"}));
  EXPECT_EQ(cmd["cwd"], "/tmp");
  EXPECT_EQ(cmd["uid"], 1000);
  EXPECT_EQ(cmd["gid"], 100);
  EXPECT_EQ(cmd["groups"], Json({5, 6}));
}

TEST(VmBundle, ReadonlyRootAndNoHostname) {
  oci::Spec s = spec_with({"true"});
  s.root.readonly = true;
  auto line = init_cmdline(s);
  ASSERT_TRUE(line.ok());
  EXPECT_NE(line->find(" strata.rootflags=ro "), std::string::npos) << *line;
  EXPECT_EQ(line->find("hostname"), std::string::npos);
  EXPECT_FALSE(decoded_cmd(*line).contains("env"));  // strata-init's defaults apply
}

TEST(VmBundle, RefusesWhatCannotRun) {
  EXPECT_NE(init_cmdline(oci::Spec{}).error().to_string().find("process.args is empty"), std::string::npos);
  EXPECT_FALSE(init_cmdline(spec_with({})).ok());
  oci::Spec spaced = spec_with({"true"});
  spaced.hostname = "two words";
  EXPECT_NE(init_cmdline(spaced).error().to_string().find("hostname"), std::string::npos);
  // An environment that cannot fit on the kernel command line (2048 bytes on x86).
  oci::Spec big = spec_with({"true"});
  big.process->env = {"BIG=" + std::string(1600, 'x')};
  auto r = init_cmdline(big);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().to_string().find("kernel command line"), std::string::npos) << r.error().to_string();
}

TEST(VmBundle, ParsesInitReports) {
  auto e = parse_init_report("exit 7\n");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, 7);
  EXPECT_TRUE(e->error_step.empty());
  EXPECT_EQ(parse_init_report("exit 0\r")->code, 0);
  EXPECT_EQ(parse_init_report("exit 255")->code, 255);
  auto x = parse_init_report("error 7 exec\n");
  ASSERT_TRUE(x.has_value());
  EXPECT_EQ(x->code, 127);
  EXPECT_EQ(x->error_step, "exec");
  EXPECT_EQ(parse_init_report("error 3 root")->code, 125);
  for (const char* bad : {"", "exit", "exit 256", "exit -1", "exit 7 and more", "exit x", "error 3",
                          "error 3 ", "error x root", "error 3 two words", "starting pid 1", "exit 12345"}) {
    EXPECT_FALSE(parse_init_report(bad).has_value()) << bad;
  }
}

TEST(VmBundle, CpioIsNewc) {
  std::string a = make_cpio({{"dev", S_IFDIR | 0755, "", 0, 0},
                             {"dev/console", S_IFCHR | 0600, "", 5, 1},
                             {"init", S_IFREG | 0755, "abcde", 0, 0}});
  // Every header is 110 bytes of "070701" + 13 hex fields, names and data padded to 4 bytes.
  ASSERT_EQ(a.compare(0, 6, "070701"), 0);
  EXPECT_EQ(a.size() % 4, 0u);
  auto field = [&](size_t hdr, int i) { return std::stoul(a.substr(hdr + 6 + 8 * i, 8), nullptr, 16); };
  size_t hdr = 0;
  std::vector<std::string> names;
  for (;;) {
    ASSERT_EQ(a.compare(hdr, 6, "070701"), 0) << "header at " << hdr;
    size_t namesize = field(hdr, 11), filesize = field(hdr, 6);
    std::string name = a.substr(hdr + 110, namesize - 1);
    names.push_back(name);
    size_t data = (hdr + 110 + namesize + 3) & ~size_t{3};
    if (name == "dev/console") {
      EXPECT_EQ(field(hdr, 1), static_cast<unsigned long>(S_IFCHR | 0600));
      EXPECT_EQ(field(hdr, 9), 5u);
      EXPECT_EQ(field(hdr, 10), 1u);
    }
    if (name == "init") {
      EXPECT_EQ(filesize, 5u);
      EXPECT_EQ(a.substr(data, 5), "abcde");
    }
    if (name == "TRAILER!!!") break;
    hdr = (data + filesize + 3) & ~size_t{3};
  }
  EXPECT_EQ(names, (std::vector<std::string>{"dev", "dev/console", "init", "TRAILER!!!"}));
}

TEST(VmBundle, PrepareNamesWhatIsMissing) {
  std::string dir = ::testing::TempDir() + "vm_bundle_XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  BundleRequest req{dir, "/no/such/kernel", "/no/such/strata-init", dir + "/cache", dir + "/vm", ""};
  auto r = prepare_bundle(req);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().to_string().find("config.json"), std::string::npos) << r.error().to_string();
  // A config whose root is missing.
  ASSERT_TRUE(
      fs::write_file_atomic(
          dir + "/config.json",
          R"({"ociVersion": "1.0.2", "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                                 "root": {"path": "rootfs"}})")
          .ok());
  r = prepare_bundle(req);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().to_string().find("rootfs is not a directory"), std::string::npos)
      << r.error().to_string();
  ASSERT_TRUE(fs::mkdir_p(dir + "/rootfs").ok());
  r = prepare_bundle(req);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().to_string().find("--kernel /no/such/kernel"), std::string::npos)
      << r.error().to_string();
  // Nothing was cached for a bundle that could not run.
  EXPECT_FALSE(fs::exists(dir + "/cache"));
  ASSERT_TRUE(fs::remove_tree(dir).ok());
}

}  // namespace
}  // namespace strata::sandbox
