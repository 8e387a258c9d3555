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
//    re-split into two records parses the same.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

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
  return 0;
}
