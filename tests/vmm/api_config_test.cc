// The Firecracker config file (--config-file) and the typed configuration behind the API.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "vmm/api/vm_config.h"

namespace strata::vmm::api {
namespace {

using nlohmann::json;

// A config file as Firecracker's docs/getting-started.md writes one.
constexpr std::string_view kConfigFile = R"({
  "boot-source": {
    "kernel_image_path": "/k/vmlinux",
    "boot_args": "console=ttyS0 reboot=k panic=1 pci=off",
    "initrd_path": null
  },
  "drives": [
    {"drive_id": "data", "path_on_host": "/d/data.ext4", "is_root_device": false, "is_read_only": true},
    {"drive_id": "rootfs", "partuuid": null, "is_root_device": true, "cache_type": "Unsafe",
     "is_read_only": false, "path_on_host": "/d/rootfs.ext4", "io_engine": "Sync", "rate_limiter": null,
     "socket": null}
  ],
  "machine-config": {"vcpu_count": 2, "mem_size_mib": 1024, "smt": false, "track_dirty_pages": false,
                     "huge_pages": "None"},
  "cpu-config": null,
  "balloon": null,
  "network-interfaces": [{"iface_id": "eth0", "guest_mac": "AA:FC:00:00:00:01", "host_dev_name": "tap0"}],
  "vsock": {"guest_cid": 3, "uds_path": "/tmp/v.sock"},
  "logger": {"log_path": "/tmp/fc.log", "level": "Debug", "show_level": true, "show_log_origin": false},
  "metrics": {"metrics_path": "/tmp/metrics"},
  "mmds-config": null,
  "entropy": {}
})";

Error parse_error(std::string_view text) {
  auto r = parse_vm_config(text);
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? Error("") : r.error();
}

TEST(ApiConfig, ParsesFirecrackersConfigFile) {
  auto c = parse_vm_config(kConfigFile);
  ASSERT_TRUE(c.ok()) << c.error().message();
  ASSERT_TRUE(c->boot_source);
  EXPECT_EQ(c->boot_source->kernel_image_path, "/k/vmlinux");
  EXPECT_FALSE(c->boot_source->initrd_path);
  EXPECT_EQ(c->machine_config.vcpu_count, 2u);
  EXPECT_EQ(c->machine_config.mem_size_mib, 1024u);
  ASSERT_EQ(c->drives.size(), 2u);
  EXPECT_EQ(c->drives[0].drive_id, "rootfs");  // the root device first
  EXPECT_TRUE(c->drives[1].is_read_only);
  ASSERT_EQ(c->network_interfaces.size(), 1u);
  EXPECT_EQ(c->network_interfaces[0].guest_mac, "AA:FC:00:00:00:01");
  ASSERT_TRUE(c->vsock);
  EXPECT_EQ(c->vsock->guest_cid, 3u);
  EXPECT_EQ(c->logger->level, LogLevel::kDebug);
  EXPECT_EQ(c->metrics->metrics_path, "/tmp/metrics");
  EXPECT_TRUE(c->entropy);

  // GET /vm/config prints the same layout, and it parses back to the same configuration.
  auto again = parse_vm_config(to_json(*c).dump());
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(*again, *c);
}

TEST(ApiConfig, MinimalConfigTakesDefaults) {
  auto c = parse_vm_config(R"({"boot-source": {"kernel_image_path": "/k"}})");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->machine_config, MachineConfig{});
  EXPECT_EQ(c->machine_config.mem_size_mib, 128u);
  EXPECT_TRUE(c->drives.empty());
  EXPECT_FALSE(c->vsock);
}

TEST(ApiConfig, Refusals) {
  EXPECT_EQ(parse_error(R"({"drives": []})").message(), "Invalid JSON: missing field `boot-source`");
  EXPECT_EQ(parse_error("{").message().rfind("Invalid JSON: parse error", 0), 0u);
  EXPECT_EQ(parse_error("[]").message(), "Invalid JSON: invalid type: array, expected an object");
  EXPECT_NE(parse_error(R"({"boot-source": {"kernel_image_path": "/k"}, "bootsource": {}})").message().find(
                "unknown field `bootsource`"),
            std::string::npos);
  EXPECT_EQ(parse_error(R"({"boot-source": {"kernel_image_path": "/k"}, "balloon": {"amount_mib": 1}})").message(),
            "Invalid JSON: section `balloon` is not supported by strata-vmm");
  EXPECT_EQ(parse_error(R"({"boot-source": {"kernel_image_path": "/k", "x": 1}})").message(),
            "Invalid JSON: boot-source: unknown field `x`, expected one of `kernel_image_path`, `initrd_path`, "
            "`boot_args`");
  EXPECT_EQ(parse_error(R"({"boot-source": {"kernel_image_path": "/k"}, "machine-config": {"vcpu_count": 1, "mem_size_mib": 0}})")
                .message(),
            "VM config error: Machine config error: The memory size (MiB) is either 0, or not a multiple of the "
            "configured page size.");
  EXPECT_EQ(parse_error(R"({"boot-source": {"kernel_image_path": "/k"}, "drives": [
                 {"drive_id": "a", "path_on_host": "/a", "is_root_device": true},
                 {"drive_id": "b", "path_on_host": "/b", "is_root_device": true}]})")
                .message(),
            "Block device error: Drive config error: A root block device already exists!");
  EXPECT_EQ(parse_error(R"({"boot-source": {"kernel_image_path": "/k"}, "drives": [
                 {"drive_id": "a b", "path_on_host": "/a", "is_root_device": true}]})")
                .message(),
            "Invalid JSON: drives[0]: invalid value for field `drive_id`: API Resource IDs can only contain "
            "alphanumeric characters and underscores.");
  EXPECT_NE(parse_error(R"({"boot-source": {"kernel_image_path": "/k"}, "drives": {}})").message().find(
                "expected an array"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"boot-source": {"kernel_image_path": "/k"}, "vsock": {"guest_cid": 1, "uds_path": "/v"}})")
                .message()
                .find("CIDs 0-2 are reserved"),
            std::string::npos);
}

TEST(ApiConfig, DuplicateDriveIdsReplace) {
  auto c = parse_vm_config(R"({"boot-source": {"kernel_image_path": "/k"}, "drives": [
      {"drive_id": "a", "path_on_host": "/old", "is_root_device": true},
      {"drive_id": "b", "path_on_host": "/b", "is_root_device": false},
      {"drive_id": "a", "path_on_host": "/new", "is_root_device": true}]})");
  ASSERT_TRUE(c.ok()) << c.error().message();
  ASSERT_EQ(c->drives.size(), 2u);
  EXPECT_EQ(c->drives[0].path_on_host, "/new");
}

TEST(ApiConfig, RootDeviceMovesFirstWhenAnExistingDriveBecomesRoot) {
  VmConfig c;
  ASSERT_TRUE(c.put_drive({.drive_id = "a", .path_on_host = "/a"}).ok());
  ASSERT_TRUE(c.put_drive({.drive_id = "b", .path_on_host = "/b"}).ok());
  ASSERT_TRUE(c.put_drive({.drive_id = "b", .path_on_host = "/b", .is_root_device = true}).ok());
  EXPECT_EQ(c.drives[0].drive_id, "b");
  EXPECT_FALSE(c.put_drive({.drive_id = "a", .path_on_host = "/a", .is_root_device = true}).ok());
  // The root device may stop being root.
  ASSERT_TRUE(c.put_drive({.drive_id = "b", .path_on_host = "/b"}).ok());
  ASSERT_TRUE(c.put_drive({.drive_id = "a", .path_on_host = "/a", .is_root_device = true}).ok());
  EXPECT_EQ(c.drives[0].drive_id, "a");
}

TEST(ApiConfig, MachineConfigLimits) {
  VmConfig c;
  EXPECT_TRUE(c.update_machine_config({.vcpu_count = 32, .mem_size_mib = kMaxMemSizeMib}).ok());
  EXPECT_FALSE(c.update_machine_config({.mem_size_mib = kMaxMemSizeMib + 1}).ok());
  EXPECT_FALSE(c.update_machine_config({.vcpu_count = 33}).ok());
  EXPECT_TRUE(c.update_machine_config({.vcpu_count = 2, .smt = true}).ok());
  EXPECT_FALSE(c.update_machine_config({.vcpu_count = 3}).ok());  // smt still on
  EXPECT_EQ(c.machine_config.vcpu_count, 2u);
  EXPECT_TRUE(c.update_machine_config({.mem_size_mib = 4, .huge_pages = HugePages::k2M}).ok());
  EXPECT_FALSE(c.update_machine_config({.mem_size_mib = 5}).ok());
}

TEST(ApiConfig, MacAddresses) {
  auto m = parse_mac("06:00:AC:10:00:ff");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)[0], 0x06);
  EXPECT_EQ((*m)[5], 0xff);
  EXPECT_FALSE(parse_mac("06:00:AC:10:00").ok());
  EXPECT_FALSE(parse_mac("06-00-AC-10-00-ff").ok());
  EXPECT_FALSE(parse_mac("0g:00:AC:10:00:ff").ok());
}

TEST(ApiConfig, LoggerLevelsAreCaseInsensitive) {
  for (auto [text, level] : {std::pair{"ERROR", LogLevel::kError}, std::pair{"warn", LogLevel::kWarn},
                             std::pair{"Warning", LogLevel::kWarn}, std::pair{"trace", LogLevel::kTrace},
                             std::pair{"Off", LogLevel::kOff}}) {
    auto l = parse_logger(json{{"level", text}});
    ASSERT_TRUE(l.ok()) << text;
    EXPECT_EQ(l->level, level) << text;
  }
}

}  // namespace
}  // namespace strata::vmm::api
