// The Firecracker API's routing, rules and fault messages, through the Router with a fake
// controller (no sockets, no VM). The default file checks of VmController run for real against
// files in a temporary directory.
#include "vmm/api/router.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace strata::vmm::api {
namespace {

using nlohmann::json;

class FakeController : public VmController {
 public:
  InstanceState state() const override { return state_; }
  Status configure_logger(const Logger&) override { return record("logger"); }
  Status configure_metrics(const Metrics&) override { return record("metrics"); }
  Status start(const VmConfig& config) override {
    if (!start_error.empty()) return Error(start_error);
    started_with = config;
    state_ = InstanceState::kRunning;
    return record("start");
  }
  Status pause() override {
    state_ = InstanceState::kPaused;
    return record("pause");
  }
  Status resume() override {
    state_ = InstanceState::kRunning;
    return record("resume");
  }
  Status send_ctrl_alt_del() override { return record("ctrl-alt-del"); }
  Status flush_metrics() override { return record("flush"); }
  Status snapshot_create(const SnapshotCreate& p) override { return record("create " + p.snapshot_path); }
  Result<VmConfig> snapshot_load(const SnapshotLoad& p) override {
    TRY(record("load " + p.snapshot_path + " " + p.mem_file_path + (p.resume_vm ? " resume" : "")));
    state_ = p.resume_vm ? InstanceState::kRunning : InstanceState::kPaused;
    VmConfig c;
    c.machine_config.vcpu_count = 4;
    return c;
  }
  Status patch_drive(const std::string& id, const std::string& path) override {
    return record("patch " + id + " " + path);
  }

  Status record(std::string call) {
    calls.push_back(std::move(call));
    return ok();
  }

  InstanceState state_ = InstanceState::kNotStarted;
  std::vector<std::string> calls;
  std::string start_error;
  VmConfig started_with;
};

class ApiRouter : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("strata-api-router-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    kernel_ = (dir_ / "vmlinux").string();
    rootfs_ = (dir_ / "rootfs.ext4").string();
    std::ofstream(kernel_) << "kernel";
    std::ofstream(rootfs_) << "disk";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  ApiResponse call(std::string_view method, std::string_view path, std::string_view body = "") {
    return router_.handle(method, path, body);
  }
  static std::string fault(const ApiResponse& r) {
    auto j = json::parse(r.body);
    return j.at("fault_message").get<std::string>();
  }
  void expect_fault(const ApiResponse& r, std::string_view contains) {
    EXPECT_EQ(r.status, 400u) << r.body;
    if (!r.body.empty()) {
      EXPECT_NE(fault(r).find(contains), std::string::npos) << fault(r);
    }
  }
  std::string boot_body() const { return json{{"kernel_image_path", kernel_}, {"boot_args", "console=ttyS0"}}.dump(); }
  std::string drive_body(std::string_view id, bool root) const {
    return json{{"drive_id", id}, {"path_on_host", rootfs_}, {"is_root_device", root}, {"is_read_only", false}}.dump();
  }
  void boot() {
    ASSERT_EQ(call("PUT", "/boot-source", boot_body()).status, 204u);
    ASSERT_EQ(call("PUT", "/actions", R"({"action_type": "InstanceStart"})").status, 204u);
  }

  std::filesystem::path dir_;
  std::string kernel_, rootfs_;
  FakeController ctl_;
  Router router_{ctl_};
};

TEST_F(ApiRouter, InstanceInfoAndVersion) {
  auto r = call("GET", "/");
  ASSERT_EQ(r.status, 200u);
  auto j = json::parse(r.body);
  EXPECT_EQ(j["id"], "anonymous-instance");
  EXPECT_EQ(j["state"], "Not started");
  EXPECT_EQ(j["vmm_version"], std::string(kFirecrackerApiVersion));
  EXPECT_EQ(j["app_name"], "strata-vmm");
  r = call("GET", "/version");
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(json::parse(r.body)["firecracker_version"], std::string(kFirecrackerApiVersion));
  boot();
  EXPECT_EQ(json::parse(call("GET", "/").body)["state"], "Running");
}

TEST_F(ApiRouter, UnknownPathsAndMethods) {
  EXPECT_EQ(fault(call("GET", "/foo")), "Invalid request method and/or path: GET foo.");
  EXPECT_EQ(fault(call("POST", "/actions", "{}")), "Invalid request method and/or path: POST actions.");
  EXPECT_EQ(fault(call("DELETE", "/drives/x")), "Invalid request method and/or path: DELETE drives.");
  EXPECT_EQ(fault(call("PUT", "/snapshot/restore", "{}")), "Invalid request method and/or path: PUT /snapshot/restore.");
  EXPECT_EQ(fault(call("PUT", "/snapshot", "{}")), "Missing snapshot operation type.");
  EXPECT_EQ(fault(call("PUT", "/actions")), "Empty PUT request.");
  EXPECT_EQ(fault(call("PATCH", "/vm")), "Empty PATCH request.");
  EXPECT_EQ(fault(call("GET", "/", "{}")), "GET request cannot have a body.");
  expect_fault(call("PUT", "/balloon", "{}"), "not supported by strata-vmm");
  // Query strings and the absolute form are routed by their path.
  EXPECT_EQ(call("GET", "/machine-config?x=1").status, 200u);
  EXPECT_EQ(call("GET", "http://localhost/version").status, 200u);
}

TEST_F(ApiRouter, MachineConfig) {
  auto r = call("PUT", "/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 1024, "smt": false})");
  ASSERT_EQ(r.status, 204u) << r.body;
  EXPECT_TRUE(r.body.empty());
  r = call("GET", "/machine-config");
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(json::parse(r.body),
            json::parse(R"({"vcpu_count":2,"mem_size_mib":1024,"smt":false,"track_dirty_pages":false,"huge_pages":"None"})"));

  EXPECT_EQ(fault(call("PUT", "/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 0})")),
            "Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size.");
  expect_fault(call("PUT", "/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 1099511627776})"),
               "larger than strata-vmm's limit of 1048576 MiB");
  expect_fault(call("PUT", "/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 1e300})"),
               "invalid type for field `mem_size_mib`");
  expect_fault(call("PUT", "/machine-config", R"({"vcpu_count": 33, "mem_size_mib": 128})"),
               "The number of vCPUs must be greater than 0, less than 32");
  expect_fault(call("PUT", "/machine-config", R"({"vcpu_count": 3, "mem_size_mib": 128, "smt": true})"),
               "must be 1 or an even number if SMT is enabled");
  expect_fault(call("PUT", "/machine-config", R"({"vcpu_count": 0, "mem_size_mib": 128})"), "number of vCPUs");
  expect_fault(call("PUT", "/machine-config", R"({"vcpu_count": -1, "mem_size_mib": 128})"),
               "invalid value for field `vcpu_count`");
  expect_fault(call("PUT", "/machine-config", R"({"vcpu_count": "2", "mem_size_mib": 128})"),
               "invalid type for field `vcpu_count`: string, expected an unsigned integer");
  expect_fault(call("PUT", "/machine-config", R"({"mem_size_mib": 128})"), "missing field `vcpu_count`");
  expect_fault(call("PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 128, "foo": 1})"),
               "unknown field `foo`, expected one of `vcpu_count`");
  expect_fault(call("PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 128, "cpu_template": "T2"})"),
               "cpu_template \"T2\" is not supported");
  EXPECT_EQ(call("PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 128, "cpu_template": "None"})").status, 204u);
  expect_fault(call("PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 129, "huge_pages": "2M"})"),
               "not a multiple of the configured page size");
  expect_fault(call("PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 128, "huge_pages": "1G"})"),
               "unknown variant `1G` for field `huge_pages`");
  // Refusals change nothing.
  EXPECT_EQ(router_.config().machine_config.mem_size_mib, 128u);

  EXPECT_EQ(fault(call("PATCH", "/machine-config", "{}")), "Empty PATCH request.");
  ASSERT_EQ(call("PATCH", "/machine-config", R"({"mem_size_mib": 256})").status, 204u);
  EXPECT_EQ(router_.config().machine_config.mem_size_mib, 256u);
  EXPECT_EQ(router_.config().machine_config.vcpu_count, 1u);
  boot();
  EXPECT_EQ(fault(call("PUT", "/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 128})")),
            "The requested operation is not supported after starting the microVM.");
  EXPECT_EQ(fault(call("PATCH", "/machine-config", R"({"vcpu_count": 2})")),
            "The requested operation is not supported after starting the microVM.");
}

TEST_F(ApiRouter, MalformedJson) {
  auto r = call("PUT", "/machine-config", "{\"vcpu_count\": ");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(fault(r).rfind("An error occurred when deserializing the json body of a request: ", 0), 0u) << fault(r);
  expect_fault(call("PUT", "/boot-source", "[1, 2]"), "expected an object");
  expect_fault(call("PUT", "/boot-source", "null"), "expected an object");
  expect_fault(call("PUT", "/actions", "\"InstanceStart\""), "expected an object");
}

TEST_F(ApiRouter, BootSource) {
  auto r = call("PUT", "/boot-source", json{{"kernel_image_path", (dir_ / "missing").string()}}.dump());
  EXPECT_EQ(r.status, 400u);
  EXPECT_NE(fault(r).find("Boot source error: The kernel file cannot be opened: open kernel "), std::string::npos) << fault(r);
  EXPECT_NE(fault(r).find("ENOENT"), std::string::npos) << fault(r);
  expect_fault(call("PUT", "/boot-source", json{{"kernel_image_path", kernel_}, {"initrd_path", (dir_ / "nope").string()}}.dump()),
               "The initrd file cannot be opened");
  expect_fault(call("PUT", "/boot-source", R"({"boot_args": "quiet"})"), "missing field `kernel_image_path`");
  expect_fault(call("PUT", "/boot-source", json{{"kernel_image_path", kernel_}, {"boot_args", 7}}.dump()),
               "invalid type for field `boot_args`: number, expected a string");
  EXPECT_FALSE(router_.config().boot_source);
  ASSERT_EQ(call("PUT", "/boot-source", boot_body()).status, 204u);
  ASSERT_TRUE(router_.config().boot_source);
  EXPECT_EQ(router_.config().boot_source->boot_args, "console=ttyS0");
}

TEST_F(ApiRouter, Drives) {
  EXPECT_EQ(fault(call("PUT", "/drives/", drive_body("rootfs", true))), "The ID cannot be empty.");
  EXPECT_EQ(fault(call("PUT", "/drives/root-fs", drive_body("root-fs", true))),
            "API Resource IDs can only contain alphanumeric characters and underscores.");
  EXPECT_EQ(fault(call("PUT", "/drives/a", drive_body("b", true))),
            "The id from the path does not match the id from the body!");
  expect_fault(call("PUT", "/drives/rootfs",
                    json{{"drive_id", "rootfs"}, {"path_on_host", rootfs_}, {"is_root_device", true}, {"io_engine", "Async"}}.dump()),
               "io_engine \"Async\" is not supported by strata-vmm (only \"Sync\")");
  expect_fault(call("PUT", "/drives/rootfs",
                    json{{"drive_id", "rootfs"}, {"path_on_host", rootfs_}, {"is_root_device", true},
                         {"rate_limiter", {{"bandwidth", {{"size", 1}, {"refill_time", 100}}}}}}.dump()),
               "field `rate_limiter` is not supported by strata-vmm");
  expect_fault(call("PUT", "/drives/rootfs", json{{"drive_id", "rootfs"}, {"path_on_host", rootfs_}}.dump()),
               "missing field `is_root_device`");
  auto r = call("PUT", "/drives/data", json{{"drive_id", "data"}, {"path_on_host", (dir_ / "none").string()}, {"is_root_device", false}}.dump());
  EXPECT_NE(fault(r).find("Drive config error: Unable to create the virtio block device: open drive file"), std::string::npos) << fault(r);

  // Firecracker's null optional fields (as GET /vm/config prints them) are accepted.
  ASSERT_EQ(call("PUT", "/drives/data",
                 json{{"drive_id", "data"}, {"path_on_host", rootfs_}, {"is_root_device", false}, {"partuuid", nullptr},
                      {"rate_limiter", nullptr}, {"io_engine", "Sync"}, {"cache_type", "Writeback"}, {"socket", nullptr}}
                     .dump())
                .status,
            204u);
  ASSERT_EQ(call("PUT", "/drives/rootfs", drive_body("rootfs", true)).status, 204u);
  ASSERT_EQ(router_.config().drives.size(), 2u);
  EXPECT_EQ(router_.config().drives[0].drive_id, "rootfs");  // the root device first
  EXPECT_EQ(router_.config().drives[1].cache_type, CacheType::kWriteback);
  EXPECT_EQ(fault(call("PUT", "/drives/other", drive_body("other", true))),
            "Drive config error: A root block device already exists!");
  // The same id replaces, also for the root device itself.
  ASSERT_EQ(call("PUT", "/drives/rootfs", drive_body("rootfs", true)).status, 204u);
  ASSERT_EQ(call("PUT", "/drives/data", drive_body("data", false)).status, 204u);
  EXPECT_EQ(router_.config().drives.size(), 2u);
  EXPECT_EQ(router_.config().drives[1].cache_type, CacheType::kUnsafe);
}

TEST_F(ApiRouter, PatchDriveAfterBoot) {
  ASSERT_EQ(call("PUT", "/drives/rootfs", drive_body("rootfs", true)).status, 204u);
  std::string patch = json{{"drive_id", "rootfs"}, {"path_on_host", "/new.img"}}.dump();
  EXPECT_EQ(fault(call("PATCH", "/drives/rootfs", patch)),
            "The requested operation is not supported before starting the microVM.");
  boot();
  EXPECT_EQ(fault(call("PUT", "/drives/data", drive_body("data", false))),
            "The requested operation is not supported after starting the microVM.");
  EXPECT_EQ(fault(call("PATCH", "/drives/other", patch)), "The id from the path does not match the id from the body!");
  expect_fault(call("PATCH", "/drives/other", json{{"drive_id", "other"}, {"path_on_host", "/x"}}.dump()),
               "Unable to patch the block device: no drive with id other.");
  ASSERT_EQ(call("PATCH", "/drives/rootfs", patch).status, 204u);
  EXPECT_EQ(ctl_.calls.back(), "patch rootfs /new.img");
  auto j = json::parse(call("GET", "/vm/config").body);
  EXPECT_EQ(j["drives"][0]["path_on_host"], "/new.img");
}

TEST_F(ApiRouter, NetworkVsockEntropyLoggerMetrics) {
  std::string net = R"({"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:AC:10:00:02"})";
  EXPECT_EQ(fault(call("PUT", "/network-interfaces/eth1", net)),
            "The id from the path [eth1] does not match the id from the body [eth0]!");
  ASSERT_EQ(call("PUT", "/network-interfaces/eth0", net).status, 204u);
  EXPECT_EQ(fault(call("PUT", "/network-interfaces/eth1",
                       R"({"iface_id": "eth1", "host_dev_name": "tap1", "guest_mac": "06:00:ac:10:00:02"})")),
            "Network config error: The MAC address is already in use: 06:00:ac:10:00:02");
  expect_fault(call("PUT", "/network-interfaces/eth1", R"({"iface_id": "eth1", "host_dev_name": "tap1", "guest_mac": "nope"})"),
               "invalid value for field `guest_mac`");
  expect_fault(call("PUT", "/network-interfaces/eth1", R"({"iface_id": "eth1", "host_dev_name": "tap1", "rx_rate_limiter": {}})"),
               "field `rx_rate_limiter` is not supported");

  expect_fault(call("PUT", "/vsock", R"({"guest_cid": 2, "uds_path": "/tmp/v.sock"})"), "CIDs 0-2 are reserved");
  ASSERT_EQ(call("PUT", "/vsock", R"({"vsock_id": "vsock0", "guest_cid": 3, "uds_path": "/tmp/v.sock"})").status, 204u);
  ASSERT_EQ(call("PUT", "/entropy", "{}").status, 204u);
  expect_fault(call("PUT", "/entropy", R"({"rate_limiter": {"ops": {"size": 1, "refill_time": 1}}})"),
               "field `rate_limiter` is not supported");

  EXPECT_EQ(fault(call("PUT", "/logger", R"({"level": "verbose"})")),
            "An error occurred when deserializing the json body of a request: Invalid LevelFilter.");
  ASSERT_EQ(call("PUT", "/logger", R"({"log_path": "/tmp/log", "level": "warning", "show_level": true})").status, 204u);
  EXPECT_EQ(router_.config().logger->level, LogLevel::kWarn);
  ASSERT_EQ(call("PUT", "/metrics", R"({"metrics_path": "/tmp/metrics"})").status, 204u);
  EXPECT_EQ(fault(call("PUT", "/metrics", R"({"metrics_path": "/tmp/metrics"})")),
            "Metrics error: Cannot initialize the metrics system due to bad user input: Reinitialization of metrics not allowed.");

  auto j = json::parse(call("GET", "/vm/config").body);
  EXPECT_EQ(j["network-interfaces"][0]["host_dev_name"], "tap0");
  EXPECT_EQ(j["vsock"]["guest_cid"], 3);
  EXPECT_EQ(j["entropy"], json::parse(R"({"rate_limiter": null})"));
  EXPECT_EQ(j["logger"]["level"], "Warning");
}

TEST_F(ApiRouter, Actions) {
  EXPECT_EQ(fault(call("PUT", "/actions", R"({"action_type": "Reboot"})")),
            "An error occurred when deserializing the json body of a request: unknown variant `Reboot` for field "
            "`action_type`, expected one of `FlushMetrics`, `InstanceStart`, `SendCtrlAltDel`.");
  EXPECT_EQ(fault(call("PUT", "/actions", R"({"action_type": "FlushMetrics"})")),
            "The requested operation is not supported before starting the microVM.");
  EXPECT_EQ(fault(call("PUT", "/actions", R"({"action_type": "SendCtrlAltDel"})")),
            "The requested operation is not supported before starting the microVM.");
  EXPECT_EQ(fault(call("PUT", "/actions", R"({"action_type": "InstanceStart"})")),
            "Start microvm error: Cannot start microvm without kernel configuration.");
  ASSERT_EQ(call("PUT", "/boot-source", boot_body()).status, 204u);
  ctl_.start_error = "load kernel " + kernel_ + ": not a bzImage or ELF kernel";
  EXPECT_EQ(fault(call("PUT", "/actions", R"({"action_type": "InstanceStart"})")),
            "Start microvm error: " + ctl_.start_error);
  ctl_.start_error.clear();
  ASSERT_EQ(call("PUT", "/actions", R"({"action_type": "InstanceStart"})").status, 204u);
  EXPECT_EQ(ctl_.started_with.boot_source->kernel_image_path, kernel_);
  EXPECT_EQ(fault(call("PUT", "/actions", R"({"action_type": "InstanceStart"})")),
            "The requested operation is not supported after starting the microVM.");
  EXPECT_EQ(fault(call("PUT", "/boot-source", boot_body())),
            "The requested operation is not supported after starting the microVM.");
  EXPECT_EQ(call("PUT", "/actions", R"({"action_type": "FlushMetrics"})").status, 204u);
  EXPECT_EQ(call("PUT", "/actions", R"({"action_type": "SendCtrlAltDel"})").status, 204u);
  EXPECT_EQ(ctl_.calls.back(), "ctrl-alt-del");
}

TEST_F(ApiRouter, PauseResumeAndSnapshotCreate) {
  EXPECT_EQ(fault(call("PATCH", "/vm", R"({"state": "Paused"})")),
            "The requested operation is not supported before starting the microVM.");
  std::string create = R"({"snapshot_path": "/s/vm.snap", "mem_file_path": "/s/vm.mem"})";
  EXPECT_EQ(fault(call("PUT", "/snapshot/create", create)),
            "The requested operation is not supported before starting the microVM.");
  boot();
  expect_fault(call("PUT", "/snapshot/create", create), "must be paused first");
  expect_fault(call("PATCH", "/vm", R"({"state": "Stopped"})"), "unknown variant `Stopped`");
  ASSERT_EQ(call("PATCH", "/vm", R"({"state": "Paused"})").status, 204u);
  EXPECT_EQ(json::parse(call("GET", "/").body)["state"], "Paused");
  expect_fault(call("PUT", "/snapshot/create", R"({"snapshot_type": "Diff", "snapshot_path": "/a", "mem_file_path": "/b"})"),
               "snapshot_type \"Diff\" is not supported by strata-vmm (only \"Full\")");
  expect_fault(call("PUT", "/snapshot/create", R"({"snapshot_path": "/a"})"), "missing field `mem_file_path`");
  ASSERT_EQ(call("PUT", "/snapshot/create", create).status, 204u);
  EXPECT_EQ(ctl_.calls.back(), "create /s/vm.snap");
  ASSERT_EQ(call("PATCH", "/vm", R"({"state": "Resumed"})").status, 204u);
  EXPECT_EQ(json::parse(call("GET", "/").body)["state"], "Running");
  EXPECT_EQ(fault(call("PUT", "/snapshot/load", R"({"snapshot_path": "/a", "mem_file_path": "/b"})")),
            "The requested operation is not supported after starting the microVM.");
}

TEST_F(ApiRouter, SnapshotLoad) {
  EXPECT_EQ(fault(call("PUT", "/snapshot/load", R"({"snapshot_path": "/a"})")),
            "An error occurred when deserializing the json body of a request: missing field: either `mem_backend` or "
            "`mem_file_path` is required.");
  EXPECT_EQ(fault(call("PUT", "/snapshot/load",
                       R"({"snapshot_path": "/a", "mem_file_path": "/b", "mem_backend": {"backend_type": "File", "backend_path": "/b"}})")),
            "An error occurred when deserializing the json body of a request: too many fields: either `mem_backend` or "
            "`mem_file_path` exclusively is required.");
  expect_fault(call("PUT", "/snapshot/load", R"({"snapshot_path": "/a", "mem_backend": {"backend_type": "Uffd", "backend_path": "/u"}})"),
               "\"Uffd\" is not supported");
  expect_fault(call("PUT", "/snapshot/load", R"({"snapshot_path": "/a", "mem_backend": {"backend_path": "/u"}})"),
               "missing field `mem_backend.backend_type`");
  expect_fault(call("PUT", "/snapshot/load", R"({"snapshot_path": "/a", "mem_backend": {"backend_type": "File", "backend_path": "/u", "x": 1}})"),
               "unknown field `mem_backend.x`");
  ASSERT_EQ(call("PUT", "/snapshot/load",
                 R"({"snapshot_path": "/a", "mem_backend": {"backend_type": "File", "backend_path": "/m"}, "resume_vm": true})")
                .status,
            204u);
  EXPECT_EQ(ctl_.calls.back(), "load /a /m resume");
  EXPECT_EQ(router_.config().machine_config.vcpu_count, 4u);  // the restored configuration
  EXPECT_EQ(json::parse(call("GET", "/").body)["state"], "Running");
}

TEST_F(ApiRouter, SnapshotLoadRefusedAfterBootResources) {
  ASSERT_EQ(call("PUT", "/logger", R"({"level": "Info"})").status, 204u);  // not boot-specific
  ASSERT_EQ(call("PUT", "/machine-config", R"({"vcpu_count": 1, "mem_size_mib": 128})").status, 204u);
  EXPECT_EQ(fault(call("PUT", "/snapshot/load", R"({"snapshot_path": "/a", "mem_file_path": "/b"})")),
            "Load snapshot error: Loading a microVM snapshot not allowed after configuring boot-specific resources.");
}

TEST_F(ApiRouter, VmConfigRoundTrips) {
  ASSERT_EQ(call("PUT", "/boot-source", boot_body()).status, 204u);
  ASSERT_EQ(call("PUT", "/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 512, "track_dirty_pages": true})").status, 204u);
  ASSERT_EQ(call("PUT", "/drives/rootfs", drive_body("rootfs", true)).status, 204u);
  ASSERT_EQ(call("PUT", "/network-interfaces/eth0", R"({"iface_id": "eth0", "host_dev_name": "tap0"})").status, 204u);
  auto r = call("GET", "/vm/config");
  ASSERT_EQ(r.status, 200u);
  auto back = parse_vm_config(r.body);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(*back, router_.config());
}

TEST_F(ApiRouter, Serial) {
  expect_fault(call("PUT", "/serial", R"({"serial_out_path": ""})"), "empty path");
  expect_fault(call("PUT", "/serial", R"({"serial_out_path": "/x", "rate_limiter": {}})"), "not implemented");
  expect_fault(call("PUT", "/serial", R"({"serial_out": "/x"})"), "unknown field `serial_out`");
  ASSERT_EQ(call("PUT", "/serial", R"({"serial_out_path": "/tmp/console.log"})").status, 204u);
  ASSERT_EQ(call("PUT", "/boot-source", boot_body()).status, 204u);
  // In GET /vm/config and back through the config-file parser.
  auto back = parse_vm_config(call("GET", "/vm/config").body);
  ASSERT_TRUE(back.ok()) << back.error().message();
  ASSERT_TRUE(back->serial.has_value());
  EXPECT_EQ(back->serial->serial_out_path, "/tmp/console.log");
  ASSERT_EQ(call("PUT", "/actions", R"({"action_type": "InstanceStart"})").status, 204u);
  EXPECT_EQ(ctl_.started_with.serial->serial_out_path, "/tmp/console.log");
  EXPECT_EQ(fault(call("PUT", "/serial", R"({"serial_out_path": "/tmp/other.log"})")),
            "The requested operation is not supported after starting the microVM.");
}

TEST_F(ApiRouter, HostileInputIsRefusedNotThrown) {
  std::string bad_utf8 = "/drives/\xff\xfe";
  EXPECT_EQ(call("PUT", bad_utf8, "{}").status, 400u);
  EXPECT_EQ(call("GET", "/\xc3", "").status, 400u);
  EXPECT_EQ(call("PUT", "/boot-source", std::string("{\"kernel_image_path\": \"\xff\"}")).status, 400u);
  EXPECT_EQ(call("\x01\x02", "", "").status, 400u);
  EXPECT_EQ(call("PUT", "/boot-source", std::string(100000, '[')).status, 400u);
}

}  // namespace
}  // namespace strata::vmm::api
