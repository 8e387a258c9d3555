// Test certificates made at run time: a throwaway CA and the leaf
// certificates TLS tests need, written as PEM files into a fresh temporary
// directory (under $TEST_TMPDIR when Bazel sets it, else /tmp). Nothing here
// is ever committed: every run mints new keys.
//
//   auto certs = zrelay::testing::MakeTestCerts();
//   ASSERT_TRUE(certs.ok()) << certs.error().message();
//   server.certs = {{certs->server.cert, certs->server.key}};
//
// Keys are EC P-256 (EVP_PKEY_Q_keygen): a full set takes a few milliseconds.
#pragma once

#include <string>
#include <vector>

#include "engine/result.h"

namespace zrelay::testing {

// One certificate and its private key, as PEM file paths.
struct CertFiles {
  std::string cert;
  std::string key;
};

// What to put in a certificate.
struct CertSpec {
  std::string common_name = {};
  std::vector<std::string> dns_names = {};  // SAN DNS entries ("*.x.test" allowed)
  std::vector<std::string> ips = {};        // SAN IP entries ("127.0.0.1", "::1")
  long not_before_days = -1;           // relative to now
  long not_after_days = 30;            // relative to now (negative: expired)
  bool is_ca = false;
  bool client_auth = false;            // extendedKeyUsage clientAuth (else serverAuth)
};

struct TestCerts {
  std::string dir;           // the temporary directory holding every file
  CertFiles ca;              // the trusted throwaway CA ("zrelay test CA")
  CertFiles server;          // CN=localhost; SAN localhost, 127.0.0.1, ::1
  CertFiles second;          // CN=other.test; SAN other.test, *.wild.test
  CertFiles client;          // CN=zrelay test client; clientAuth
  CertFiles expired;         // CN=localhost, expired yesterday
  CertFiles wrong_name;      // CN=wrong.test; SAN wrong.test only
  CertFiles other_ca;        // an unrelated CA nobody trusts
  CertFiles untrusted;       // CN=localhost, issued by other_ca
  CertFiles untrusted_client;  // a client cert issued by other_ca
};

// Makes a fresh directory with the full set above.
Result<TestCerts> MakeTestCerts();

// Issues one certificate into `dir` as <name>.pem / <name>.key. `issuer`
// empty (both paths empty) makes it self-signed.
Result<CertFiles> IssueCert(const std::string& dir, const std::string& name,
                            const CertSpec& spec, const CertFiles& issuer);

// Deletes the files and the directory MakeTestCerts() made.
void RemoveTestCerts(const TestCerts& certs);

}  // namespace zrelay::testing
