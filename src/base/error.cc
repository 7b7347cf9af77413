#include "base/error.h"

#include <cstring>

namespace strata {

std::string errno_string(int err) {
  const char* name = strerrorname_np(err);
  const char* desc = strerrordesc_np(err);
  if (name == nullptr) return "errno " + std::to_string(err);
  std::string s(name);
  if (desc != nullptr) {
    s += " (";
    s += desc;
    s += ")";
  }
  return s;
}

std::string Error::to_string() const {
  if (err_ == 0) return message_;
  return message_ + ": " + errno_string(err_);
}

}  // namespace strata
