#include "base/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <mutex>

namespace strata::log {
namespace {

std::mutex g_mu;
spdlog::sink_ptr g_sink;
spdlog::level::level_enum g_level = spdlog::level::warn;
std::string g_pattern = "%Y-%m-%dT%H:%M:%S.%fZ %l %n: %v";

spdlog::sink_ptr sink_locked() {
  if (!g_sink) g_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  return g_sink;
}

}  // namespace

bool setup(const Options& opts) {
  std::lock_guard lk(g_mu);
  bool ok = true;
  g_sink.reset();
  if (!opts.file.empty()) {
    try {
      g_sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(opts.file);
    } catch (const spdlog::spdlog_ex&) {
      ok = false;
    }
  }
  sink_locked();
  g_level = opts.debug ? spdlog::level::debug : spdlog::level::warn;
  // The JSON form follows runc's --log-format json: {"level":..,"msg":..,"time":..}.
  g_pattern = opts.format == Format::kJson
                  ? R"({"level":"%l","msg":"%n: %v","time":"%Y-%m-%dT%H:%M:%S.%fZ"})"
                  : "%Y-%m-%dT%H:%M:%S.%fZ %l %n: %v";
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) {
    l->sinks().clear();
    l->sinks().push_back(g_sink);
    l->set_level(g_level);
    l->set_pattern(g_pattern, spdlog::pattern_time_type::utc);
  });
  return ok;
}

std::shared_ptr<spdlog::logger> get(const std::string& name) {
  std::lock_guard lk(g_mu);
  if (auto l = spdlog::get(name)) return l;
  auto l = std::make_shared<spdlog::logger>(name, sink_locked());
  l->set_level(g_level);
  l->set_pattern(g_pattern, spdlog::pattern_time_type::utc);
  spdlog::register_logger(l);
  return l;
}

}  // namespace strata::log
