// CertNames on real certificates minted at run time: SAN names, the CN
// fallback, one-label wildcards, case, and the first claim winning.
#include "ssl/cert_names.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <cstdio>
#include <memory>
#include <string>

#include "tests/support/test_certs.h"

namespace zrelay {
namespace {

using testing::CertSpec;
using testing::IssueCert;

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

class CertNamesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto certs = testing::MakeTestCerts();
    ASSERT_TRUE(certs.ok()) << certs.error().message();
    certs_ = *certs;
  }
  void TearDown() override { testing::RemoveTestCerts(certs_); }

  X509Ptr Issue(const std::string& name, const CertSpec& spec) {
    auto files = IssueCert(certs_.dir, name, spec, certs_.ca);
    EXPECT_TRUE(files.ok()) << files.error().message();
    if (!files.ok()) return nullptr;
    FILE* f = std::fopen(files->cert.c_str(), "r");
    EXPECT_NE(f, nullptr) << files->cert;
    if (f == nullptr) return nullptr;
    X509Ptr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    EXPECT_NE(cert, nullptr) << files->cert;
    return cert;
  }

  testing::TestCerts certs_;
};

TEST_F(CertNamesTest, SanNamesAndOneLabelWildcardsMatchWithoutCase) {
  X509Ptr a = Issue("a", CertSpec{.common_name = "ignored.test",
                                  .dns_names = {"api.example.test", "*.wild.test"}});
  X509Ptr b = Issue("b", CertSpec{.common_name = "b", .dns_names = {"www.example.test"}});
  ASSERT_TRUE(a && b);
  CertNames names;
  EXPECT_EQ(names.Add(a.get(), 0), 2u);
  EXPECT_EQ(names.Add(b.get(), 1), 1u);
  EXPECT_EQ(names.Find("api.example.test"), 0);
  EXPECT_EQ(names.Find("API.Example.TEST"), 0);
  EXPECT_EQ(names.Find("www.example.test"), 1);
  EXPECT_EQ(names.Find("x.wild.test"), 0);
  // A wildcard covers exactly one label.
  EXPECT_EQ(names.Find("wild.test"), -1);
  EXPECT_EQ(names.Find("a.b.wild.test"), -1);
  // With SAN names present, the CN is not a name.
  EXPECT_EQ(names.Find("ignored.test"), -1);
  EXPECT_EQ(names.Find("unknown.test"), -1);
  EXPECT_EQ(names.Find(""), -1);
}

TEST_F(CertNamesTest, TheCommonNameCountsWithoutSanNames) {
  X509Ptr cert = Issue("cn", CertSpec{.common_name = "Legacy.Example.Test"});
  ASSERT_TRUE(cert);
  CertNames names;
  EXPECT_EQ(names.Add(cert.get(), 3), 1u);
  EXPECT_EQ(names.Find("legacy.example.test"), 3);
}

TEST_F(CertNamesTest, TheFirstCertificateToClaimANameKeepsIt) {
  X509Ptr first = Issue("first", CertSpec{.dns_names = {"same.test", "*.same.test"}});
  X509Ptr second = Issue("second", CertSpec{.dns_names = {"same.test", "*.same.test"}});
  ASSERT_TRUE(first && second);
  CertNames names;
  names.Add(first.get(), 0);
  names.Add(second.get(), 1);
  EXPECT_EQ(names.Find("same.test"), 0);
  EXPECT_EQ(names.Find("x.same.test"), 0);
}

TEST_F(CertNamesTest, PartialWildcardsMatchNothing) {
  X509Ptr cert = Issue("partial", CertSpec{.dns_names = {"f*.partial.test"}});
  ASSERT_TRUE(cert);
  CertNames names;
  names.Add(cert.get(), 0);
  EXPECT_EQ(names.Find("foo.partial.test"), -1);
  EXPECT_EQ(names.Find("f*.partial.test"), -1);
}

}  // namespace
}  // namespace zrelay
