// Error and Result<T>: the one error convention of strata (STYLE.md section 5).
// An Error holds the errno (0 when the failure is not a syscall's) and a message that each
// caller extends with what it was doing, outermost first:
//   "create container web: mount overlay on /run/strata/x/rootfs: EINVAL (Invalid argument)"
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace strata {

class Error {
 public:
  explicit Error(std::string message, int err = 0) : message_(std::move(message)), err_(err) {}

  // A failed syscall: `what` names the step and object, `err` defaults to errno.
  static Error sys(std::string what, int err = errno) { return Error(std::move(what), err); }

  // Prepends "what: " to the message; returns *this for chaining.
  Error& context(std::string_view what) & {
    message_.insert(0, std::string(what) + ": ");
    return *this;
  }
  Error&& context(std::string_view what) && { return std::move(context(what)); }

  int err() const { return err_; }
  const std::string& message() const { return message_; }
  // The message plus, for syscall errors, " : EINVAL (Invalid argument)".
  std::string to_string() const;

 private:
  std::string message_;
  int err_ = 0;
};

// "EINVAL (Invalid argument)"; "errno 4242" for unknown values.
std::string errno_string(int err);

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  Error& error() & { return std::get<1>(v_); }
  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  Error& error() & { return error_; }
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_{""};
  bool ok_ = true;
};

using Status = Result<void>;
inline Status ok() { return {}; }

}  // namespace strata

#define STRATA_CONCAT_INNER_(a, b) a##b
#define STRATA_CONCAT_(a, b) STRATA_CONCAT_INNER_(a, b)

// Returns the error of a Status/Result expression from the enclosing function.
#define TRY(expr)                                                     \
  do {                                                                \
    auto&& strata_try_r_ = (expr);                                    \
    if (!strata_try_r_.ok()) return std::move(strata_try_r_).error(); \
  } while (0)

// Same, prepending context (a std::string expression evaluated only on failure).
#define TRY_CTX(expr, ctx)                                                       \
  do {                                                                           \
    auto&& strata_try_r_ = (expr);                                               \
    if (!strata_try_r_.ok()) return std::move(strata_try_r_).error().context(ctx); \
  } while (0)

// ASSIGN_OR_RETURN(auto x, f()); declares x from the value or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(STRATA_CONCAT_(strata_aor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr)           \
  auto tmp = (expr);                                     \
  if (!tmp.ok()) return std::move(tmp).error();          \
  lhs = std::move(tmp).value()
