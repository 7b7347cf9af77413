// The log destination of strata-vmm; see logger.h.
#include "vmm/logger.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>

#include "base/fd.h"
#include "base/log.h"
#include "vmm/host_files.h"

namespace strata::vmm {

namespace {

std::atomic<uint64_t> g_missed{0};

// base/log's text format. log::setup() takes a file name only and opens it with fopen(), which
// waits for a FIFO's reader and then writes in blocking mode; this sink writes to a descriptor
// open_output() made non-blocking instead. (Were log::setup() to take a ready sink, this copy
// of the format could go.)
constexpr const char* kPattern = "%Y-%m-%dT%H:%M:%S.%fZ %l %n: %v";

class NonBlockingSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit NonBlockingSink(UniqueFd fd) : fd_(std::move(fd)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    // One write per line: a FIFO takes a line of up to PIPE_BUF bytes whole or not at all.
    if (!write_line(fd_.get(), std::string_view(line.data(), line.size()), "the log").ok())
      g_missed.fetch_add(1, std::memory_order_relaxed);
  }
  void flush_() override {}

 private:
  UniqueFd fd_;
};

}  // namespace

Status configure_log(const std::string& path, bool debug) {
  log::Options o;
  o.debug = debug;
  if (path.empty()) {
    log::setup(o);
    return ok();
  }
  ASSIGN_OR_RETURN(UniqueFd fd, open_output(path, "log file"));
  auto sink = std::make_shared<NonBlockingSink>(std::move(fd));
  sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(kPattern, spdlog::pattern_time_type::utc));
  log::setup(o);    // the level, for every logger
  log::get("vmm");  // exists from here on, to take the sink
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->sinks().assign(1, sink); });
  return ok();
}

uint64_t missed_log_lines() { return g_missed.load(std::memory_order_relaxed); }

}  // namespace strata::vmm
