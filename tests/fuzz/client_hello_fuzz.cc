// Fuzzes ParseClientHello, which reads the first bytes a client sends, before
// anything about it is known. Beyond not crashing, each verdict must agree
// with the bytes:
//  - kNeedMore asks for more than it was given, and for at most the rest of
//    one record; kNotTls says why;
//  - kOk: the SNI is a host-name shape (1..255 printable, non-space bytes,
//    lower case) and occurs, length-prefixed, in the handshake records; so
//    does each ALPN protocol; legacy_version is 3.x;
//  - the verdict is stable as bytes arrive, as a MSG_PEEK caller sees them: a
//    prefix never contradicts the whole input (it is kNeedMore, or the same
//    verdict), bytes after a complete hello change nothing, and a hello
//    re-split into two records parses the same;
//  - it agrees with OpenSSL's own parser: when OpenSSL gets as far as its
//    ClientHello callback, the peek is not still asking for more bytes, and
//    if it parsed the hello too, both read the same version, SNI, ALPN list
//    and TLS 1.3 offer. (The peek may refuse what OpenSSL parses: it checks
//    extension contents OpenSSL only looks at later.)
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ssl/client_hello.h"
#include "tests/fuzz/fuzz_check.h"

namespace zrelay {
namespace {

constexpr size_t kRecordHeader = 5;
constexpr size_t kMaxRecord = 16384;

size_t RecordLength(std::string_view in, size_t pos) {
  return (size_t{static_cast<uint8_t>(in[pos + 3])} << 8) | static_cast<uint8_t>(in[pos + 4]);
}

// The payloads of the handshake records the input starts with, joined. The
// oracle for "occurs in the hello": written apart from the parser, and
// lenient (it keeps whatever part of a record is there).
std::string HandshakePayloads(std::string_view in) {
  std::string out;
  for (size_t pos = 0; pos + kRecordHeader <= in.size() && in[pos] == 0x16;) {
    const size_t len = RecordLength(in, pos);
    out.append(in.substr(pos + kRecordHeader, len));
    pos += kRecordHeader + len;
  }
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool SameHello(const ClientHelloInfo& a, const ClientHelloInfo& b) {
  return a.sni == b.sni && a.alpn == b.alpn && a.legacy_version == b.legacy_version &&
         a.offers_tls13 == b.offers_tls13;
}

void CheckHello(std::string_view in, const ClientHelloInfo& hello) {
  const std::string payloads = HandshakePayloads(in);
  FUZZ_CHECK((hello.legacy_version >> 8) == 3);
  if (!hello.sni.empty()) {
    FUZZ_CHECK(hello.sni.size() <= 255);
    for (char c : hello.sni) {
      FUZZ_CHECK(c > 0x20 && c < 0x7f);
      FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
    }
    // The parser lower-cases the name; compare both sides lower-cased.
    std::string prefixed = {static_cast<char>(hello.sni.size() >> 8),
                            static_cast<char>(hello.sni.size() & 0xff)};
    prefixed += hello.sni;
    FUZZ_CHECK(Lower(payloads).find(Lower(prefixed)) != std::string::npos);
  }
  for (const std::string& proto : hello.alpn) {
    FUZZ_CHECK(!proto.empty() && proto.size() <= 255);
    FUZZ_CHECK(payloads.find(static_cast<char>(proto.size()) + proto) != std::string::npos);
  }
  if (hello.offers_tls13) FUZZ_CHECK(payloads.find("\x03\x04") != std::string::npos);
}

// Parses `in` and checks what any single verdict must satisfy.
ClientHelloPeek Peek(std::string_view in) {
  ClientHelloPeek peek = ParseClientHello(in);
  switch (peek.status) {
    case PeekStatus::kNeedMore:
      FUZZ_CHECK(peek.needed > in.size());
      FUZZ_CHECK(peek.needed <= in.size() + kRecordHeader + kMaxRecord);
      FUZZ_CHECK(peek.error.empty());
      break;
    case PeekStatus::kNotTls:
      FUZZ_CHECK(!peek.error.empty());
      break;
    case PeekStatus::kOk:
      FUZZ_CHECK(peek.error.empty());
      CheckHello(in, peek.hello);
      break;
  }
  return peek;
}

// `shorter` is the verdict on a prefix of the bytes `longer` was given.
void CheckPrefix(const ClientHelloPeek& shorter, const ClientHelloPeek& longer) {
  if (shorter.status == PeekStatus::kOk) {
    FUZZ_CHECK(longer.status == PeekStatus::kOk);
    FUZZ_CHECK(SameHello(shorter.hello, longer.hello));
  }
  if (shorter.status == PeekStatus::kNotTls) {
    FUZZ_CHECK(longer.status == PeekStatus::kNotTls);
    FUZZ_CHECK(shorter.error == longer.error);
  }
  if (longer.status == PeekStatus::kNeedMore) {
    FUZZ_CHECK(shorter.status == PeekStatus::kNeedMore);
    FUZZ_CHECK(shorter.needed <= longer.needed);
  }
}

// FNV-1a, to pick cut points that differ per input but not per run.
uint64_t Hash(std::string_view in) {
  uint64_t h = 0xcbf29ce484222325u;
  for (char c : in) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3u;
  return h;
}

// When the input's first record holds a whole kOk hello, the same bytes in
// two records (cut at `cut` of the payload) followed by the rest.
void CheckResplit(std::string_view in, const ClientHelloPeek& whole, uint64_t hash) {
  if (in.size() < kRecordHeader) return;
  const size_t len = RecordLength(in, 0);
  if (len < 2 || in.size() < kRecordHeader + len) return;
  const size_t cut = 1 + hash % (len - 1);
  const std::string_view header = in.substr(0, 3);
  std::string split(header);
  split += {static_cast<char>(cut >> 8), static_cast<char>(cut & 0xff)};
  split += in.substr(kRecordHeader, cut);
  split += header;
  split += {static_cast<char>((len - cut) >> 8), static_cast<char>((len - cut) & 0xff)};
  split += in.substr(kRecordHeader + cut);
  const ClientHelloPeek peek = Peek(split);
  FUZZ_CHECK(peek.status == PeekStatus::kOk);
  FUZZ_CHECK(SameHello(peek.hello, whole.hello));
}

// What OpenSSL's ClientHello callback saw: it runs only once OpenSSL has
// read the records and the message's structure, before it acts on any
// extension.
struct OpenSslView {
  bool reached = false;
  unsigned legacy_version = 0;
  std::optional<std::string> server_name;  // raw extension bodies, when present
  std::optional<std::string> alpn;
  std::optional<std::string> supported_versions;
};

int OnClientHello(SSL* ssl, int* alert, void* arg) {
  auto* view = static_cast<OpenSslView*>(arg);
  view->reached = true;
  view->legacy_version = SSL_client_hello_get0_legacy_version(ssl);
  auto extension = [ssl](unsigned type, std::optional<std::string>& body) {
    const unsigned char* p = nullptr;
    size_t n = 0;
    if (SSL_client_hello_get0_ext(ssl, type, &p, &n) == 1) {
      body.emplace(reinterpret_cast<const char*>(p), n);
    }
  };
  extension(TLSEXT_TYPE_server_name, view->server_name);
  extension(TLSEXT_TYPE_application_layer_protocol_negotiation, view->alpn);
  extension(TLSEXT_TYPE_supported_versions, view->supported_versions);
  *alert = SSL_AD_HANDSHAKE_FAILURE;
  return SSL_CLIENT_HELLO_ERROR;  // seen enough: end the handshake here
}

OpenSslView ParseWithOpenSsl(std::string_view in) {
  static SSL_CTX* const ctx = SSL_CTX_new(TLS_server_method());
  FUZZ_CHECK(ctx != nullptr);
  OpenSslView view;
  SSL_CTX_set_client_hello_cb(ctx, OnClientHello, &view);
  SSL* ssl = SSL_new(ctx);
  FUZZ_CHECK(ssl != nullptr);
  BIO* rbio = BIO_new_mem_buf(in.data(), static_cast<int>(in.size()));
  BIO* wbio = BIO_new(BIO_s_mem());
  FUZZ_CHECK(rbio != nullptr && wbio != nullptr);
  SSL_set_bio(ssl, rbio, wbio);  // the SSL owns both
  SSL_set_accept_state(ssl);
  SSL_do_handshake(ssl);
  SSL_free(ssl);
  ERR_clear_error();
  return view;
}

std::string EncodeAlpn(const std::vector<std::string>& protocols) {
  std::string list;
  for (const std::string& p : protocols) list += static_cast<char>(p.size()) + p;
  return std::string{static_cast<char>(list.size() >> 8), static_cast<char>(list.size() & 0xff)} +
         list;
}

bool ListsTls13(const std::string& supported_versions) {
  for (size_t i = 1; i + 1 < supported_versions.size(); i += 2) {
    if (supported_versions[i] == 3 && supported_versions[i + 1] == 4) return true;
  }
  return false;
}

void CheckAgainstOpenSsl(std::string_view in, const ClientHelloPeek& peek) {
  if (peek.status == PeekStatus::kNotTls) return;  // nothing to compare: spare the handshake
  const OpenSslView openssl = ParseWithOpenSsl(in);
  if (!openssl.reached) return;
  FUZZ_CHECK(peek.status != PeekStatus::kNeedMore);
  if (peek.status != PeekStatus::kOk) return;
  const ClientHelloInfo& hello = peek.hello;
  FUZZ_CHECK(hello.legacy_version == openssl.legacy_version);
  FUZZ_CHECK(openssl.alpn.has_value() == !hello.alpn.empty());
  if (openssl.alpn) FUZZ_CHECK(*openssl.alpn == EncodeAlpn(hello.alpn));
  if (!hello.sni.empty()) {
    FUZZ_CHECK(openssl.server_name.has_value());
    std::string entry = {0, static_cast<char>(hello.sni.size() >> 8),
                         static_cast<char>(hello.sni.size() & 0xff)};
    entry += hello.sni;
    FUZZ_CHECK(Lower(*openssl.server_name).find(Lower(entry)) == 2);
  }
  FUZZ_CHECK(hello.offers_tls13 ==
             (openssl.supported_versions && ListsTls13(*openssl.supported_versions)));
}

}  // namespace
}  // namespace zrelay

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zrelay;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const ClientHelloPeek whole = Peek(in);
  const uint64_t hash = Hash(in);
  if (size > 0) {
    CheckPrefix(Peek(in.substr(0, size - 1)), whole);
    CheckPrefix(Peek(in.substr(0, hash % size)), whole);
  }
  if (whole.status != PeekStatus::kNeedMore) {
    const std::string doubled = std::string(in) + std::string(in);
    CheckPrefix(whole, Peek(doubled));
  }
  if (whole.status == PeekStatus::kOk) CheckResplit(in, whole, hash);
  CheckAgainstOpenSsl(in, whole);
  return 0;
}
