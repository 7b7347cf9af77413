// A libnftables context: runs nft command text as one atomic transaction and lists rules as
// JSON. Knows nothing of strata's rules (firewall.h writes those).
#pragma once

#include <memory>
#include <string>

#include "base/error.h"

struct nft_ctx;

namespace strata::net {

class Nft {
 public:
  static Result<Nft> open();

  // Runs `commands` (nft syntax, one per line) as one transaction: all or nothing.
  // The error names `what` and carries nft's own message.
  Status run(const std::string& commands, const std::string& what);
  // Runs a list command and returns its JSON output ("{"nftables": [...]}").
  Result<std::string> list_json(const std::string& command);

 private:
  struct Free {
    void operator()(nft_ctx* c) const;
  };
  explicit Nft(std::unique_ptr<nft_ctx, Free> ctx) : ctx_(std::move(ctx)) {}
  std::unique_ptr<nft_ctx, Free> ctx_;
};

}  // namespace strata::net
