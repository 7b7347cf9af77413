#include "net/nft.h"

#include <nftables/libnftables.h>

#include "base/strings.h"

namespace strata::net {

void Nft::Free::operator()(nft_ctx* c) const { nft_ctx_free(c); }

Result<Nft> Nft::open() {
  nft_ctx* raw = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!raw) return Error("create nftables context: out of memory", ENOMEM);
  std::unique_ptr<nft_ctx, Free> ctx(raw);
  // Buffered, so nft's messages end up in our errors instead of on the caller's stderr.
  if (nft_ctx_buffer_output(raw) != 0 || nft_ctx_buffer_error(raw) != 0)
    return Error("create nftables context: cannot buffer its output");
  return Nft(std::move(ctx));
}

Status Nft::run(const std::string& commands, const std::string& what) {
  nft_ctx_output_set_flags(ctx_.get(), 0);
  if (nft_run_cmd_from_buffer(ctx_.get(), commands.c_str()) != 0) {
    std::string err(str::trim(nft_ctx_get_error_buffer(ctx_.get())));
    return Error(what + ": nft: " + (err.empty() ? "failed" : err));
  }
  return ok();
}

Result<std::string> Nft::list_json(const std::string& command) {
  nft_ctx_output_set_flags(ctx_.get(), NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE);
  int rc = nft_run_cmd_from_buffer(ctx_.get(), command.c_str());
  nft_ctx_output_set_flags(ctx_.get(), 0);
  if (rc != 0) {
    std::string err(str::trim(nft_ctx_get_error_buffer(ctx_.get())));
    return Error(command + ": nft: " + (err.empty() ? "failed" : err));
  }
  return std::string(nft_ctx_get_output_buffer(ctx_.get()));
}

}  // namespace strata::net
