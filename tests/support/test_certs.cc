#include "tests/support/test_certs.h"

#include <dirent.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>

namespace zrelay::testing {
namespace {

struct PkeyFree { void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); } };
struct X509Free { void operator()(X509* p) const { X509_free(p); } };
struct BioFree { void operator()(BIO* p) const { BIO_free(p); } };
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

// OpenSSL's error queue as text, then cleared.
std::string DrainErrors() {
  std::string out;
  char buf[256];
  while (unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

Error Fail(const std::string& what) {
  return Error::Invalid("test certs: " + what + ": " + DrainErrors());
}

bool AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

Result<PkeyPtr> ReadKey(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return Fail("open " + path);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return Fail("read key " + path);
  return key;
}

Result<X509Ptr> ReadCert(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return Fail("open " + path);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return Fail("read cert " + path);
  return cert;
}

}  // namespace

Result<CertFiles> IssueCert(const std::string& dir, const std::string& name,
                            const CertSpec& spec, const CertFiles& issuer) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return Fail("EC P-256 keygen");

  X509Ptr cert(X509_new());
  if (!cert) return Fail("X509_new");
  X509_set_version(cert.get(), 2);  // v3

  unsigned char serial[8];
  if (RAND_bytes(serial, sizeof serial) != 1) return Fail("RAND_bytes");
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);

  X509_gmtime_adj(X509_getm_notBefore(cert.get()), spec.not_before_days * 86400L);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), spec.not_after_days * 86400L);
  X509_set_pubkey(cert.get(), key.get());

  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("zrelay tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.common_name.c_str()),
                             -1, -1, 0);

  // Self-signed unless an issuer is given.
  X509Ptr issuer_cert;
  PkeyPtr issuer_key;
  if (!issuer.cert.empty()) {
    auto c = ReadCert(issuer.cert);
    if (!c.ok()) return c.error();
    auto k = ReadKey(issuer.key);
    if (!k.ok()) return k.error();
    issuer_cert = std::move(c.value());
    issuer_key = std::move(k.value());
  }
  X509* signer_cert = issuer_cert ? issuer_cert.get() : cert.get();
  EVP_PKEY* signer_key = issuer_key ? issuer_key.get() : key.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer_cert));

  bool ok = true;
  if (spec.is_ca) {
    ok &= AddExt(cert.get(), signer_cert, NID_basic_constraints, "critical,CA:TRUE");
    ok &= AddExt(cert.get(), signer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    ok &= AddExt(cert.get(), signer_cert, NID_basic_constraints, "critical,CA:FALSE");
    ok &= AddExt(cert.get(), signer_cert, NID_key_usage, "critical,digitalSignature");
    ok &= AddExt(cert.get(), signer_cert, NID_ext_key_usage,
                 spec.client_auth ? "clientAuth" : "serverAuth");
  }
  ok &= AddExt(cert.get(), signer_cert, NID_subject_key_identifier, "hash");
  if (!issuer.cert.empty()) {
    ok &= AddExt(cert.get(), signer_cert, NID_authority_key_identifier, "keyid:always");
  }
  std::string san;
  for (const auto& dns : spec.dns_names) san += (san.empty() ? "DNS:" : ",DNS:") + dns;
  for (const auto& ip : spec.ips) san += (san.empty() ? "IP:" : ",IP:") + ip;
  if (!san.empty()) ok &= AddExt(cert.get(), signer_cert, NID_subject_alt_name, san);
  if (!ok) return Fail("extensions for " + name);

  if (X509_sign(cert.get(), signer_key, EVP_sha256()) == 0) return Fail("sign " + name);

  CertFiles files{dir + "/" + name + ".pem", dir + "/" + name + ".key"};
  {
    BioPtr out(BIO_new_file(files.cert.c_str(), "w"));
    if (!out || PEM_write_bio_X509(out.get(), cert.get()) != 1) return Fail("write " + files.cert);
  }
  {
    BioPtr out(BIO_new_file(files.key.c_str(), "w"));
    if (!out || PEM_write_bio_PrivateKey(out.get(), key.get(), nullptr, nullptr, 0, nullptr,
                                         nullptr) != 1) {
      return Fail("write " + files.key);
    }
  }
  return files;
}

Result<TestCerts> MakeTestCerts() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/zrelay-certs-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    return Error::FromErrno(errno, "test certs: mkdtemp '" + pattern + "'");
  }
  TestCerts certs;
  certs.dir = pattern;
  const CertFiles self_signed{};

  struct Step {
    CertFiles* out;
    const char* name;
    CertSpec spec;
    const CertFiles* issuer;
  };
  const Step steps[] = {
      {&certs.ca, "ca", {.common_name = "zrelay test CA", .not_after_days = 365, .is_ca = true},
       &self_signed},
      {&certs.server, "server",
       {.common_name = "localhost", .dns_names = {"localhost"}, .ips = {"127.0.0.1", "::1"}},
       &certs.ca},
      {&certs.second, "second",
       {.common_name = "other.test", .dns_names = {"other.test", "*.wild.test"}}, &certs.ca},
      {&certs.client, "client", {.common_name = "zrelay test client", .client_auth = true},
       &certs.ca},
      {&certs.expired, "expired",
       {.common_name = "localhost", .dns_names = {"localhost"}, .ips = {"127.0.0.1"},
        .not_before_days = -10, .not_after_days = -1},
       &certs.ca},
      {&certs.wrong_name, "wrong_name", {.common_name = "wrong.test", .dns_names = {"wrong.test"}},
       &certs.ca},
      {&certs.other_ca, "other_ca",
       {.common_name = "unrelated CA", .not_after_days = 365, .is_ca = true}, &self_signed},
      {&certs.untrusted, "untrusted",
       {.common_name = "localhost", .dns_names = {"localhost"}, .ips = {"127.0.0.1"}},
       &certs.other_ca},
      {&certs.untrusted_client, "untrusted_client",
       {.common_name = "stranger", .client_auth = true}, &certs.other_ca},
  };
  for (const Step& step : steps) {
    auto files = IssueCert(certs.dir, step.name, step.spec, *step.issuer);
    if (!files.ok()) {
      RemoveTestCerts(certs);
      return files.error();
    }
    *step.out = std::move(files.value());
  }
  return certs;
}

void RemoveTestCerts(const TestCerts& certs) {
  if (certs.dir.empty()) return;
  if (DIR* d = opendir(certs.dir.c_str())) {
    while (struct dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") unlink((certs.dir + "/" + name).c_str());
    }
    closedir(d);
  }
  rmdir(certs.dir.c_str());
}

}  // namespace zrelay::testing
