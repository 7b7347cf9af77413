#include "base/error.h"

#include <gtest/gtest.h>

namespace strata {
namespace {

Result<int> half(int x) {
  if (x % 2) return Error("half of " + std::to_string(x) + ": odd", EINVAL);
  return x / 2;
}

Result<int> quarter(int x) {
  ASSIGN_OR_RETURN(int h, half(x));
  ASSIGN_OR_RETURN(int q, half(h));
  return q;
}

Status check(int x) {
  TRY_CTX(half(x), "check " + std::to_string(x));
  return ok();
}

TEST(ErrorTest, MessageCarriesErrnoNameAndDescription) {
  Error e = Error::sys("mount overlay on /x", EINVAL);
  EXPECT_EQ(e.to_string(), "mount overlay on /x: EINVAL (Invalid argument)");
  EXPECT_EQ(Error("plain").to_string(), "plain");
}

TEST(ErrorTest, ContextPrependsOutermostFirst) {
  Error e = Error::sys("open /a", ENOENT);
  e.context("load bundle").context("create c1");
  EXPECT_EQ(e.to_string(), "create c1: load bundle: open /a: ENOENT (No such file or directory)");
  EXPECT_EQ(e.err(), ENOENT);
}

TEST(ResultTest, AssignOrReturnPropagates) {
  EXPECT_EQ(*quarter(8), 2);
  auto r = quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "half of 3: odd");
  Status s = check(3);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "check 3: half of 3: odd");
  EXPECT_TRUE(check(4).ok());
}

}  // namespace
}  // namespace strata
