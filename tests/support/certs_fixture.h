// CertsTest: a GoogleTest fixture base whose suite shares one freshly minted
// set of test certificates (tests/support/test_certs.h), made before the
// suite's first test and removed after its last.
//
//   class MyTlsTest : public zrelay::testing::CertsTest { ... certs_->ca.cert ... };
#pragma once

#include <gtest/gtest.h>

#include "tests/support/test_certs.h"

namespace zrelay::testing {

class CertsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto made = MakeTestCerts();
    ASSERT_TRUE(made.ok()) << made.error().message();
    certs_ = new TestCerts(std::move(made.value()));
  }
  static void TearDownTestSuite() {
    if (certs_ != nullptr) RemoveTestCerts(*certs_);
    delete certs_;
    certs_ = nullptr;
  }

  // Suites run one after another, so one slot serves every derived suite.
  static inline TestCerts* certs_ = nullptr;
};

}  // namespace zrelay::testing
