#include "base/digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>

#include "base/fd.h"
#include "base/fs.h"

namespace strata {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, size_t len) { EVP_DigestUpdate(impl_->ctx, data, len); }

std::string Sha256::digest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, md, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  out.reserve(7 + 2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

std::string sha256_digest(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.digest();
}

Result<std::string> sha256_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::sys("open " + path);
  Sha256 h;
  TRY(fs::read_chunks(fd.get(), path, [&](const char* p, size_t n) -> Status {
    h.update(p, n);
    return ok();
  }));
  return h.digest();
}

bool is_sha256_digest(std::string_view d) {
  if (d.size() != 7 + 64 || d.substr(0, 7) != "sha256:") return false;
  for (char c : d.substr(7))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

Status validate_digest(std::string_view d) {
  if (is_sha256_digest(d)) return ok();
  auto colon = d.find(':');
  if (colon == std::string_view::npos)
    return Error("digest \"" + std::string(d) + "\" has no algorithm prefix (want sha256:<hex>)");
  auto alg = d.substr(0, colon);
  if (alg != "sha256")
    return Error("digest \"" + std::string(d) + "\": unsupported algorithm \"" + std::string(alg) +
                 "\" (only sha256)");
  return Error("digest \"" + std::string(d) + "\": want 64 lowercase hex digits after sha256:");
}

std::string_view digest_hex(std::string_view d) {
  auto colon = d.find(':');
  return colon == std::string_view::npos ? d : d.substr(colon + 1);
}

}  // namespace strata
