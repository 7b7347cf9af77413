#include "base/log.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/strings.h"

namespace strata {
namespace {

TEST(LogTest, JsonFormatEscapesMessagesSoEachLineParses) {
  std::string path = "/tmp/strata-log-test." + std::to_string(::getpid()) + ".json";
  log::Options o;
  o.file = path;
  o.format = log::Format::kJson;
  ASSERT_TRUE(log::setup(o));
  log::get("test")->error("container \"a\\b\"\n failed\t{}", 7);
  log::get("test")->flush();
  auto text = fs::read_file(path);
  ASSERT_TRUE(text.ok());
  auto line = std::string(str::trim(*text));
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["level"], "error");
  EXPECT_EQ(j["msg"], "test: container \"a\\b\"\n failed\t7");
  EXPECT_FALSE(j["time"].get<std::string>().empty());
  ::unlink(path.c_str());
  log::setup(log::Options{});
}

}  // namespace
}  // namespace strata
