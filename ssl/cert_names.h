// CertNames: which of a server's certificates claims a TLS server name (SNI).
//
// A certificate claims the DNS names of its subjectAltName, or its subject's
// CN when it has none. "*.example.com" matches exactly one label
// ("a.example.com", not "example.com" nor "a.b.example.com"); partial
// wildcards ("f*.example.com") match nothing. Names compare without case.
// When two certificates claim a name, the first one added keeps it.
#pragma once

#include <openssl/x509.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

namespace zrelay {

class CertNames {
 public:
  // Records `cert`'s names for certificate `index`. Returns how many names
  // the certificate has (0: nothing SNI could ever select it by).
  size_t Add(X509* cert, size_t index);
  // The index of the certificate that claims `name`, or -1 when none does.
  long Find(std::string_view name) const;

 private:
  std::unordered_map<std::string, size_t> exact_;     // "a.example.com" -> index
  std::unordered_map<std::string, size_t> wildcard_;  // "example.com" (from "*.example.com")
};

}  // namespace zrelay
