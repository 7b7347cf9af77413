#include "image/registry_auth.h"

#include <gtest/gtest.h>

#include <thread>

#include "image/registry_http.h"

namespace strata::image {
namespace {

TEST(WwwAuthenticateTest, BearerWithQuotedCommas) {
  auto r = parse_www_authenticate(
      R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:team/app:pull,push")");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r->size(), 1u);
  const auto& c = (*r)[0];
  EXPECT_EQ(c.scheme, "bearer");
  EXPECT_EQ(c.param("realm"), "https://auth.example/token");
  EXPECT_EQ(c.param("service"), "registry.example");
  EXPECT_EQ(c.param("scope"), "repository:team/app:pull,push");
  EXPECT_EQ(c.param("missing"), "");
}

TEST(WwwAuthenticateTest, EscapesSpacesCaseAndTokens) {
  auto r = parse_www_authenticate(R"(BEARER  Realm = "a\"b\\c" , error=insufficient_scope,scope="x y")");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].scheme, "bearer");
  EXPECT_EQ((*r)[0].param("realm"), "a\"b\\c");
  EXPECT_EQ((*r)[0].param("error"), "insufficient_scope");
  EXPECT_EQ((*r)[0].param("scope"), "x y");
}

TEST(WwwAuthenticateTest, SeveralChallenges) {
  auto r = parse_www_authenticate(R"(Basic realm="basic-realm", Bearer realm="https://t/x",service=s)");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].scheme, "basic");
  EXPECT_EQ((*r)[0].param("realm"), "basic-realm");
  EXPECT_EQ((*r)[1].scheme, "bearer");
  EXPECT_EQ((*r)[1].param("service"), "s");
  auto neg = parse_www_authenticate(R"(Negotiate abc==, Bearer realm="https://t/x")");
  ASSERT_TRUE(neg.ok()) << neg.error().to_string();
  ASSERT_EQ(neg->size(), 2u);
  EXPECT_EQ((*neg)[0].param(""), "abc==");
  EXPECT_EQ((*neg)[1].param("realm"), "https://t/x");
  auto bare = parse_www_authenticate("Basic");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ((*bare)[0].scheme, "basic");
}

TEST(WwwAuthenticateTest, MalformedIsAnError) {
  EXPECT_FALSE(parse_www_authenticate("").ok());
  EXPECT_FALSE(parse_www_authenticate(R"(Bearer realm="unterminated)").ok());
  EXPECT_FALSE(parse_www_authenticate(R"(Bearer realm="a" junk "b")").ok());
  EXPECT_FALSE(parse_www_authenticate("=x").ok());
}

TEST(TokenResponseTest, TokenAccessTokenAndExpiry) {
  auto a = parse_token_response(R"({"token":"abc","expires_in":300})");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->token, "abc");
  EXPECT_EQ(a->expires_in.count(), 300);
  auto b = parse_token_response(R"({"access_token":"xyz"})");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->token, "xyz");
  EXPECT_EQ(b->expires_in.count(), 60) << "the spec's default";
  EXPECT_EQ(parse_token_response(R"({"token":"t","expires_in":5})")->expires_in.count(), 60)
      << "minimum 60 s";
  EXPECT_EQ(parse_token_response(R"({"token":"","access_token":"second"})")->token, "second");
  EXPECT_FALSE(parse_token_response(R"({"expires_in":5})").ok());
  EXPECT_FALSE(parse_token_response("not json").ok());
  EXPECT_FALSE(parse_token_response(R"({"token":"a\r\nX-Injected: 1"})").ok());
}

TEST(TokenCacheTest, PerKeyAndThreadSafe) {
  TokenCache cache;
  EXPECT_FALSE(cache.get("k").has_value());
  cache.put("k", {"tok", std::chrono::seconds(120)});
  EXPECT_EQ(cache.get("k").value_or(""), "tok");
  EXPECT_FALSE(cache.get("other").has_value());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 1000; ++i) {
        cache.put("k" + std::to_string(t), {"v" + std::to_string(i), std::chrono::seconds(120)});
        (void)cache.get("k");
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(cache.get("k3").value_or(""), "v999");
}

TEST(UrlTest, ParseAndResolve) {
  auto u = Url::parse("https://auth.example:8443/token?x=1");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "auth.example");
  EXPECT_EQ(u->port, "8443");
  EXPECT_EQ(u->target, "/token?x=1");
  auto v6 = Url::parse("http://[::1]:5000");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->authority(), "[::1]:5000");
  EXPECT_EQ(v6->target, "/");
  EXPECT_EQ(Url::parse("https://h")->port, "443");
  EXPECT_EQ(Url::parse("https://h:443/")->authority(), "h");
  auto r = u->resolve("/v2/x/blobs/uploads/abc?_state=1");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->str(), "https://auth.example:8443/v2/x/blobs/uploads/abc?_state=1");
  EXPECT_EQ(u->resolve("http://storage/b")->str(), "http://storage/b");
  EXPECT_EQ(u->resolve("//cdn.example/b")->str(), "https://cdn.example/b");
  EXPECT_FALSE(Url::parse("ftp://x").ok());
  EXPECT_FALSE(Url::parse("http://").ok());
  EXPECT_FALSE(Url::parse("http://h:80a/").ok());
  EXPECT_FALSE(Url::parse("http://h/a b").ok());
  EXPECT_EQ(url_encode("repository:a/b:pull,push"), "repository%3Aa%2Fb%3Apull%2Cpush");
}

}  // namespace
}  // namespace strata::image
