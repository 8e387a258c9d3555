#include "ssl/cert_names.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <vector>

namespace zrelay {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// The names SNI is matched against: SAN DNS entries, else the CN.
std::vector<std::string> NamesOf(X509* cert) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
    if (gn->type != GEN_DNS) continue;
    const ASN1_IA5STRING* dns = gn->d.dNSName;
    names.push_back(Lower(std::string_view(
        reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)), ASN1_STRING_length(dns))));
  }
  GENERAL_NAMES_free(sans);
  if (!names.empty()) return names;

  X509_NAME* subject = X509_get_subject_name(cert);
  const int pos = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (pos >= 0) {
    unsigned char* utf8 = nullptr;
    const int len =
        ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, pos)));
    if (len > 0) names.push_back(Lower(std::string_view(reinterpret_cast<char*>(utf8), len)));
    OPENSSL_free(utf8);
  }
  ERR_clear_error();
  return names;
}

}  // namespace

size_t CertNames::Add(X509* cert, size_t index) {
  const std::vector<std::string> names = NamesOf(cert);
  for (const std::string& name : names) {
    if (name.size() > 2 && name[0] == '*' && name[1] == '.') {
      wildcard_.emplace(name.substr(2), index);
    } else if (name.find('*') == std::string::npos) {
      exact_.emplace(name, index);
    }  // partial wildcards ("f*.example.com") are not matched
  }
  return names.size();
}

long CertNames::Find(std::string_view name) const {
  const std::string lower = Lower(name);
  if (auto it = exact_.find(lower); it != exact_.end()) return static_cast<long>(it->second);
  const size_t dot = lower.find('.');
  if (dot != std::string::npos && dot > 0) {  // "*.example.com" matches one label
    if (auto it = wildcard_.find(lower.substr(dot + 1)); it != wildcard_.end()) {
      return static_cast<long>(it->second);
    }
  }
  return -1;
}

}  // namespace zrelay
