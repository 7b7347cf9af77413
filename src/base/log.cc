#include "base/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <mutex>

namespace strata::log {
namespace {

std::mutex g_mu;
spdlog::sink_ptr g_sink;
spdlog::level::level_enum g_level = spdlog::level::warn;
std::string g_pattern = "%Y-%m-%dT%H:%M:%S.%fZ %l %n: %v";

// %j: the message escaped for a JSON string, for --log-format json (conmon and containerd
// parse each line; a quote in a message must not break it).
class JsonEscapedPayload : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    for (char c : msg.payload) {
      switch (c) {
        case '"': dest.append(std::string_view("\\\"")); break;
        case '\\': dest.append(std::string_view("\\\\")); break;
        case '\n': dest.append(std::string_view("\\n")); break;
        case '\t': dest.append(std::string_view("\\t")); break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            int n = std::snprintf(buf, sizeof buf, "\\u%04x", c);
            dest.append(buf, buf + n);
          } else {
            dest.push_back(c);
          }
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonEscapedPayload>(); }
};

std::unique_ptr<spdlog::formatter> make_formatter() {
  auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  f->add_flag<JsonEscapedPayload>('j').set_pattern(g_pattern);
  return f;
}

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
                  ? R"({"level":"%l","msg":"%n: %j","time":"%Y-%m-%dT%H:%M:%S.%fZ"})"
                  : "%Y-%m-%dT%H:%M:%S.%fZ %l %n: %v";
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) {
    l->sinks().clear();
    l->sinks().push_back(g_sink);
    l->set_level(g_level);
    l->set_formatter(make_formatter());
  });
  return ok;
}

std::shared_ptr<spdlog::logger> get(const std::string& name) {
  std::lock_guard lk(g_mu);
  if (auto l = spdlog::get(name)) return l;
  auto l = std::make_shared<spdlog::logger>(name, sink_locked());
  l->set_level(g_level);
  l->set_formatter(make_formatter());
  spdlog::register_logger(l);
  return l;
}

}  // namespace strata::log
