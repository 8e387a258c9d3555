#include "tools/config/udp_listener.h"

#include <string>

namespace zrelay {
namespace {

// A key a UDP listener refuses, and why it has nothing to act on.
struct Refused {
  std::string_view key;
  std::string_view why;
};

constexpr std::string_view kNoTls =
    "a UDP listener relays datagrams as they come (no TLS, no DTLS)";
constexpr std::string_view kNoProxy =
    "PROXY headers are for streams; a flow's client is its datagrams' source address";

constexpr Refused kListenerKeys[] = {
    {"tls_cert", kNoTls},
    {"tls_key", kNoTls},
    {"tls_min", kNoTls},
    {"alpn", kNoTls},
    {"backend_tls", kNoTls},
    {"backend_ca", kNoTls},
    {"backend_sni", kNoTls},
    {"backend_insecure", kNoTls},
    {"handshake_timeout", "a UDP listener has no TLS handshakes"},
    {"proxy_protocol", kNoProxy},
    {"proxy_protocol_from", kNoProxy},
    {"preamble_timeout", "a UDP listener reads no PROXY header or ClientHello"},
    {"route_by", "routing by SNI reads a TLS ClientHello from a stream"},
    {"route", "routing by SNI reads a TLS ClientHello from a stream"},
    {"backlog", "a UDP socket has no accept queue (max_connections caps the flows)"},
    {"connect_timeout",
     "a flow's socket to its backend connects at once, with no handshake to wait for "
     "(idle_timeout ends flows)"},
};

constexpr Refused kBackendKeys[] = {
    {"send_proxy", kNoProxy},
};

// The refused key that comes first in the file: the one an operator reading
// from the top meets first.
template <size_t N>
void RefuseFirst(TableReader& table, const Refused (&refused)[N]) {
  const Refused* first = nullptr;
  const toml::node* first_node = nullptr;
  for (const Refused& r : refused) {
    const toml::node* node = table.Get(r.key);
    if (node == nullptr) continue;
    if (first_node == nullptr || LineOf(*node) < LineOf(*first_node)) {
      first = &r;
      first_node = node;
    }
  }
  if (first == nullptr) return;
  table.Fail(*first_node, table.PathOf(first->key),
             "not with protocol = \"udp\": " + std::string(first->why));
}

}  // namespace

Result<Protocol> ParseProtocol(std::string_view text) {
  if (text == "tcp") return Protocol::kTcp;
  if (text == "udp") return Protocol::kUdp;
  return Error::Invalid("expected \"tcp\" or \"udp\", got " + QuoteString(text));
}

void RefuseStreamKeys(TableReader& listener) { RefuseFirst(listener, kListenerKeys); }

void RefuseStreamBackendKeys(TableReader& backend) { RefuseFirst(backend, kBackendKeys); }

void ReadUdpSettings(TableReader& listener, bool udp, UdpOptions* options) {
  struct Buffer {
    std::string_view key;
    size_t* out;
  };
  for (const Buffer& buffer : {Buffer{"udp_receive_buffer", &options->receive_buffer},
                               Buffer{"udp_send_buffer", &options->send_buffer}}) {
    uint64_t size = 0;
    if (!listener.Size(buffer.key, &size)) continue;
    const toml::node& node = *listener.Get(buffer.key);
    if (!udp) {
      listener.Fail(node, listener.PathOf(buffer.key), "needs protocol = \"udp\"");
    } else if (size > kMaxUdpBuffer) {
      listener.Fail(node, listener.PathOf(buffer.key),
                    "expected a size of at most \"1G\", got " + DescribeValue(node));
    } else {
      *buffer.out = static_cast<size_t>(size);
    }
  }
  int64_t responses = 0;
  if (listener.Int("udp_responses", 0, kMaxUdpResponses, &responses)) {
    if (!udp) {
      listener.Fail(*listener.Get("udp_responses"), listener.PathOf("udp_responses"),
                    "needs protocol = \"udp\"");
    } else {
      options->responses = static_cast<uint32_t>(responses);
    }
  }
}

}  // namespace zrelay
