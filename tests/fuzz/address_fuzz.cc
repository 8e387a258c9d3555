// Fuzzes Address::Parse, which reads operator input (--listen, --backend).
//
// Host names are left out: Parse resolves them with getaddrinfo, a blocking
// lookup that would tie the fuzzer to the resolver and the network. An input
// is declined (return -1, so libFuzzer does not keep it) when its host part,
// the text before the last ':', is neither empty, '*', made of digits and
// dots only, nor inside the other forms (a '['-bracketed IPv6 literal, a
// "unix:" path), or contains a ':' itself. That is a superset of what Parse
// resolves. Every other input is parsed, and an accepted address must:
//  - print as text that Parse reads back to the same socket address, and
//    that prints the same again;
//  - for IPv4 and IPv6, carry the port written after the last ':' and hold
//    no NUL byte (C-string calls would silently drop what follows it);
//  - for a unix path, print exactly the text it came from.
// A refusal must quote the input.
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/address.h"
#include "tests/fuzz/fuzz_check.h"

namespace zrelay {
namespace {

bool WouldResolve(std::string_view text) {
  if (text.substr(0, 5) == "unix:" || text.substr(0, 1) == "[") return false;
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view host = text.substr(0, colon);
  if (host.empty() || host == "*" || host.find(':') != std::string_view::npos) return false;
  return !std::all_of(host.begin(), host.end(),
                      [](char c) { return c == '.' || (c >= '0' && c <= '9'); });
}

bool SameAddress(const Address& a, const Address& b) {
  return a.family() == b.family() && a.length() == b.length() &&
         std::memcmp(a.sockaddr(), b.sockaddr(), a.length()) == 0;
}

// The number after the last ':', for text Parse accepted as IPv4 or IPv6.
int WrittenPort(std::string_view text) {
  int port = 0;
  for (char c : text.substr(text.rfind(':') + 1)) port = port * 10 + (c - '0');
  return port;
}

}  // namespace
}  // namespace zrelay

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zrelay;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (WouldResolve(text)) return -1;

  Result<Address> parsed = Address::Parse(text);
  if (!parsed.ok()) {
    const std::string& message = parsed.error().message();
    FUZZ_CHECK(message.find("bad address '" + std::string(text) + "'") == 0);
    return 0;
  }
  const Address& address = *parsed;
  FUZZ_CHECK(address.family() == AF_INET || address.family() == AF_INET6 ||
             address.family() == AF_UNIX);

  const std::string printed = address.ToString();
  Result<Address> reparsed = Address::Parse(printed);
  FUZZ_CHECK(reparsed.ok());
  FUZZ_CHECK(SameAddress(*reparsed, address));
  FUZZ_CHECK(reparsed->ToString() == printed);

  if (address.is_unix()) {
    FUZZ_CHECK(address.port() == 0);
    FUZZ_CHECK(printed == text);
  } else {
    FUZZ_CHECK(address.port() == WrittenPort(text));
    FUZZ_CHECK(text.find('\0') == std::string_view::npos);
  }
  return 0;
}
