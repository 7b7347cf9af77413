// Content digests in the OCI form "sha256:<64 lowercase hex>" (image-spec descriptor.md).
// Separate library (strata_digest) so that binaries without digests never link OpenSSL.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"

namespace strata {

// Streaming SHA-256: update() any number of times, then digest() once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t len);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // "sha256:<hex>"; the hasher cannot be updated afterwards.
  std::string digest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "sha256:<hex>" of a string.
std::string sha256_digest(std::string_view data);
// "sha256:<hex>" of a file's content.
Result<std::string> sha256_file(const std::string& path);

// True for "sha256:" + 64 lowercase hex digits (the only algorithm strata stores; sha512
// digests are refused by validate_digest with a message naming the algorithm).
bool is_sha256_digest(std::string_view digest);
// OK for a well-formed sha256 digest; otherwise an error naming what is wrong.
Status validate_digest(std::string_view digest);
// The hex part of a valid digest ("sha256:ab.." -> "ab..").
std::string_view digest_hex(std::string_view digest);

}  // namespace strata
