// WWW-Authenticate parsing, token answers and the token cache.
#include "image/registry_auth.h"

#include <nlohmann/json.hpp>

namespace strata::image {

namespace {

// RFC 7230 tchar.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}
  bool done() const { return i_ >= s_.size(); }
  char peek() const { return done() ? '\0' : s_[i_]; }
  size_t pos() const { return i_; }
  void seek(size_t p) { i_ = p; }
  void skip_ws() {
    while (!done() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  void skip_ws_and_commas() {
    while (!done() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == ',')) ++i_;
  }
  std::string_view token() {
    size_t start = i_;
    while (!done() && is_tchar(s_[i_])) ++i_;
    return s_.substr(start, i_ - start);
  }
  // token68 (RFC 7235): a token followed by '=' padding.
  std::string_view token68() {
    size_t start = i_;
    while (!done() && (is_tchar(s_[i_]) || s_[i_] == '/')) ++i_;
    while (!done() && s_[i_] == '=') ++i_;
    return s_.substr(start, i_ - start);
  }
  Result<std::string> quoted() {
    ++i_;  // opening quote
    std::string out;
    while (!done()) {
      char c = s_[i_++];
      if (c == '"') return out;
      if (c == '\\') {
        if (done()) break;
        c = s_[i_++];
      }
      out.push_back(c);
    }
    return Error("unterminated quoted string");
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

Result<std::vector<AuthChallenge>> parse_www_authenticate(std::string_view header) {
  std::string what = "parse WWW-Authenticate \"" + std::string(header.substr(0, 200)) + "\"";
  std::vector<AuthChallenge> out;
  Lexer lx(header);
  lx.skip_ws_and_commas();
  while (!lx.done()) {
    std::string_view scheme = lx.token();
    if (scheme.empty())
      return Error(what + ": expected an auth scheme at offset " + std::to_string(lx.pos()));
    AuthChallenge ch;
    ch.scheme = lower(scheme);
    lx.skip_ws();
    // Parameters until the next challenge: a token not followed by '='.
    for (;;) {
      lx.skip_ws_and_commas();
      if (lx.done()) break;
      size_t start = lx.pos();
      std::string_view name = lx.token();
      lx.skip_ws();
      if (name.empty() || lx.peek() != '=') {
        lx.seek(start);
        if (name.empty() && ch.params.empty()) {
          // token68 form ("Negotiate abc=="): kept under the empty key.
          std::string_view t = lx.token68();
          if (t.empty()) return Error(what + ": unexpected character at offset " + std::to_string(lx.pos()));
          ch.params[""] = std::string(t);
          continue;
        }
        break;
      }
      if (ch.params.empty()) {
        // "abc==" right after the scheme is a token68 ("Negotiate abc=="), not a parameter.
        size_t after = lx.pos();
        while (lx.peek() == '=') lx.seek(lx.pos() + 1);
        size_t eqs = lx.pos() - after;
        lx.skip_ws();
        if (lx.done() || lx.peek() == ',' || eqs > 1) {
          lx.seek(start);
          ch.params[""] = std::string(lx.token68());
          continue;
        }
        lx.seek(after);
      }
      lx.seek(lx.pos() + 1);
      lx.skip_ws();
      std::string value;
      if (lx.peek() == '"') {
        auto q = lx.quoted();
        if (!q.ok()) return std::move(q).error().context(what);
        value = std::move(*q);
      } else {
        value = std::string(lx.token());
      }
      ch.params[lower(name)] = std::move(value);
      lx.skip_ws();
      if (!lx.done() && lx.peek() != ',')
        return Error(what + ": expected ',' at offset " + std::to_string(lx.pos()));
    }
    out.push_back(std::move(ch));
  }
  if (out.empty()) return Error(what + ": no challenge");
  return out;
}

Result<BearerToken> parse_token_response(std::string_view body) {
  try {
    auto j = nlohmann::json::parse(body);
    if (!j.is_object()) return Error("token answer is not a JSON object");
    BearerToken t;
    for (const char* key : {"token", "access_token"}) {
      if (j.contains(key) && j[key].is_string() && !j[key].get<std::string>().empty()) {
        t.token = j[key].get<std::string>();
        break;
      }
    }
    if (t.token.empty()) return Error("token answer has neither \"token\" nor \"access_token\"");
    if (t.token.find_first_of("\r\n") != std::string::npos)
      return Error("token answer: token has a line break");
    if (j.contains("expires_in") && j["expires_in"].is_number()) {
      auto secs = j["expires_in"].get<double>();
      if (secs > 60) t.expires_in = std::chrono::seconds(static_cast<int64_t>(std::min(secs, 86400.0 * 365)));
    }
    return t;
  } catch (const nlohmann::json::exception& e) {
    return Error(std::string("token answer: ") + e.what());
  }
}

std::optional<std::string> TokenCache::get(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tokens_.find(key);
  if (it == tokens_.end() || std::chrono::steady_clock::now() >= it->second.expires) return std::nullopt;
  return it->second.token;
}

void TokenCache::put(const std::string& key, const BearerToken& token) {
  // Renew a little early: a token that expires in flight costs a 401 and a retry.
  auto margin = std::min<std::chrono::seconds>(std::chrono::seconds(10), token.expires_in / 4);
  std::lock_guard<std::mutex> lock(mu_);
  tokens_[key] = Entry{token.token, std::chrono::steady_clock::now() + token.expires_in - margin};
}

}  // namespace strata::image
