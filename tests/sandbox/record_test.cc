#include "sandbox/record.h"

#include <gtest/gtest.h>

#include "base/fs.h"

namespace strata::sandbox {
namespace {

class RecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/record_test_" + std::to_string(::getpid());
    auto s = ContainerStore::open(root_);
    ASSERT_TRUE(s.ok()) << s.error().to_string();
    store_.emplace(std::move(*s));
  }
  void TearDown() override { (void)fs::remove_tree(root_); }

  ContainerRecord make(const std::string& name) {
    ContainerRecord r;
    r.id = new_container_id();
    r.name = name;
    r.config.args = {"true"};
    r.config.ports.push_back({"127.0.0.1", 8080, 80, "tcp"});
    r.config.memory = 1 << 20;
    EXPECT_TRUE(store_->reserve_name(name, r.id).ok());
    EXPECT_TRUE(fs::mkdir_p(store_->dir(r.id)).ok());
    EXPECT_TRUE(store_->save(r).ok());
    return r;
  }

  std::string root_;
  std::optional<ContainerStore> store_;
};

TEST_F(RecordTest, SaveLoadRoundTrip) {
  ContainerRecord r = make("web");
  auto back = store_->load(r.id);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(back->name, "web");
  EXPECT_EQ(back->config.args, r.config.args);
  ASSERT_EQ(back->config.ports.size(), 1u);
  EXPECT_EQ(back->config.ports[0].host_port, 8080);
  EXPECT_EQ(back->config.memory, std::optional<int64_t>(1 << 20));
  EXPECT_EQ(store_->state(*back), RunState::kCreated);
}
TEST_F(RecordTest, VolumesRoundTripWithTheAnonymousFlag) {
  ContainerRecord r = make("vols");
  r.config.volumes = {{"/srv/data", "/data", true, false}, {"", "/var/lib/db", false, true}};
  ASSERT_TRUE(store_->save(r).ok());
  auto back = store_->load(r.id);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  ASSERT_EQ(back->config.volumes.size(), 2u);
  EXPECT_EQ(back->config.volumes[0].source, "/srv/data");
  EXPECT_TRUE(back->config.volumes[0].readonly);
  EXPECT_FALSE(back->config.volumes[0].anonymous);
  EXPECT_EQ(back->config.volumes[1].destination, "/var/lib/db");
  EXPECT_TRUE(back->config.volumes[1].source.empty());  // made on the first start
  EXPECT_TRUE(back->config.volumes[1].anonymous);
}

TEST_F(RecordTest, HealthCheckRoundTrips) {
  ContainerRecord r = make("health");
  auto plain = store_->load(r.id);
  ASSERT_TRUE(plain.ok()) << plain.error().to_string();
  EXPECT_FALSE(plain->config.health.has_value());
  r.config.health =
      HealthConfig{{"CMD-SHELL", "test -f /ready"}, 2'000'000'000, 500'000'000, 0, 4, "restart"};
  ASSERT_TRUE(store_->save(r).ok());
  auto back = store_->load(r.id);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  ASSERT_TRUE(back->config.health.has_value());
  EXPECT_EQ(back->config.health->test, (std::vector<std::string>{"CMD-SHELL", "test -f /ready"}));
  EXPECT_EQ(back->config.health->interval_ns, 2'000'000'000);
  EXPECT_EQ(back->config.health->timeout_ns, 500'000'000);
  EXPECT_EQ(back->config.health->retries, 4);
  EXPECT_EQ(back->config.health->on_failure, "restart");
}

TEST_F(RecordTest, NamesAreUnique) {
  ContainerRecord r = make("web");
  Status again = store_->reserve_name("web", new_container_id());
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message().find("already in use by container " + r.id.substr(0, 12)),
            std::string::npos);
  ASSERT_TRUE(store_->remove(r).ok());
  EXPECT_TRUE(store_->reserve_name("web", new_container_id()).ok());
}

TEST_F(RecordTest, ResolveByNameIdAndPrefix) {
  ContainerRecord a = make("alpha");
  ContainerRecord b = make("beta");
  EXPECT_EQ(*store_->resolve("alpha"), a.id);
  EXPECT_EQ(*store_->resolve(b.id), b.id);
  EXPECT_EQ(*store_->resolve(b.id.substr(0, 12)), b.id);
  auto missing = store_->resolve("gamma");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().err(), ENOENT);
  EXPECT_EQ(store_->list_ids().size(), 2u);
}

TEST_F(RecordTest, ExitFileMakesItExited) {
  ContainerRecord r = make("done");
  r.monitor_pid = 999999;  // not running
  ASSERT_TRUE(store_->save(r).ok());
  EXPECT_EQ(store_->state(r), RunState::kExited);  // a dead monitor without an exit file
  EXPECT_FALSE(store_->exit_info(r.id).has_value());
  ASSERT_TRUE(fs::write_file_atomic(store_->dir(r.id) + "/exit", "137 1700000000000000000\n").ok());
  auto e = store_->exit_info(r.id);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, 137);
  EXPECT_EQ(e->finished_ns, 1700000000000000000);
}

// A record that cannot be read whole (an `inf` --cpus written as null by an older strata, a
// truncated file) is still listed and removable: load() reports it damaged instead of failing,
// keeps what teardown needs and assumes set up what it cannot read.
TEST_F(RecordTest, DamagedRecordsLoadAsDamaged) {
  ContainerRecord r = make("broken");
  std::string path = store_->dir(r.id) + "/container.json";
  std::string text = *fs::read_file(path);
  size_t at = text.find("\"memory\"");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, text.find(',', at) - at, "\"cpus\": null");
  ASSERT_TRUE(fs::write_file_atomic(path, text).ok());
  auto d = store_->load(r.id);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  EXPECT_EQ(d->name, "broken");
  EXPECT_NE(d->damaged.find("config.cpus: "), std::string::npos) << d->damaged;
  EXPECT_TRUE(d->rootfs_mounted);
  EXPECT_TRUE(d->oci_created);

  ASSERT_TRUE(fs::write_file_atomic(path, "{\"id\": \"" + r.id + "\", \"na").ok());
  auto t = store_->load(r.id);
  ASSERT_TRUE(t.ok());
  EXPECT_NE(t->damaged.find("not a JSON object"), std::string::npos);
  EXPECT_EQ(t->name, "broken") << "the name comes from the names directory";
  EXPECT_EQ(store_->list_ids(), std::vector<std::string>{r.id});
  // Removing it releases the name.
  ASSERT_TRUE(store_->remove(*t).ok());
  EXPECT_TRUE(store_->list_ids().empty());
  EXPECT_TRUE(store_->reserve_name("broken", new_container_id()).ok());

  EXPECT_EQ(store_->load(new_container_id()).error().err(), ENOENT);
}

TEST(RecordNames, Validation) {
  EXPECT_TRUE(validate_name("web-1.a_b").ok());
  EXPECT_FALSE(validate_name("").ok());
  EXPECT_FALSE(validate_name("-web").ok());
  EXPECT_FALSE(validate_name("a/b").ok());
  EXPECT_FALSE(validate_name(std::string(129, 'a')).ok());
  EXPECT_TRUE(validate_name(random_name()).ok());
  EXPECT_EQ(new_container_id().size(), 64u);
}

}  // namespace
}  // namespace strata::sandbox
