// Logging setup: one named spdlog logger per layer (STYLE.md section 8). Callers include
// <spdlog/spdlog.h> themselves only where they log; this header stays light.
#pragma once

#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace strata::log {

enum class Format { kText, kJson };

struct Options {
  std::string file;  // empty: stderr
  Format format = Format::kText;
  bool debug = false;
};

// Configures every logger; call once from main(). Returns false when the log file cannot be
// opened (logging then goes to stderr).
bool setup(const Options& opts);
// The logger of a layer: "base", "oci", "runtime", ... Created on first use.
std::shared_ptr<spdlog::logger> get(const std::string& name);

}  // namespace strata::log
