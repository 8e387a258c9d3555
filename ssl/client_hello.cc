#include "ssl/client_hello.h"

#include <algorithm>
#include <cstdio>

namespace zrelay {
namespace {

constexpr uint8_t kHandshakeRecord = 0x16;
constexpr uint8_t kClientHello = 1;
constexpr size_t kRecordHeader = 5;
constexpr size_t kMaxRecord = 16384;  // TLSPlaintext.length limit (RFC 8446 5.1)
constexpr uint16_t kExtServerName = 0;
constexpr uint16_t kExtAlpn = 16;
constexpr uint16_t kExtSupportedVersions = 43;

ClientHelloPeek NeedMore(size_t needed) {
  ClientHelloPeek p;
  p.status = PeekStatus::kNeedMore;
  p.needed = needed;
  return p;
}

ClientHelloPeek NotTls(std::string why) {
  ClientHelloPeek p;
  p.status = PeekStatus::kNotTls;
  p.error = std::move(why);
  return p;
}

std::string Hex(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%02x", v);
  return buf;
}

// Bounds-checked big-endian reader. Any read past the end clears ok() and
// returns zeros, so parsing code checks ok() once per structure.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  bool ok() const { return ok_; }
  size_t left() const { return n_; }

  uint32_t Uint(size_t bytes) {
    if (!Have(bytes)) return 0;
    uint32_t v = 0;
    for (size_t i = 0; i < bytes; ++i) v = (v << 8) | p_[i];
    Skip(bytes);
    return v;
  }
  // A sub-reader over the next `n` bytes, which are consumed.
  Reader Sub(size_t n) {
    if (!Have(n)) return Reader(nullptr, 0, false);
    Reader r(p_, n);
    Skip(n);
    return r;
  }
  std::string_view Bytes(size_t n) {
    if (!Have(n)) return {};
    std::string_view s(reinterpret_cast<const char*>(p_), n);
    Skip(n);
    return s;
  }
  void Skip(size_t n) {
    if (!Have(n)) return;
    p_ += n;
    n_ -= n;
  }

 private:
  Reader(const uint8_t* p, size_t n, bool ok) : p_(p), n_(n), ok_(ok) {}
  bool Have(size_t n) {
    if (ok_ && n <= n_) return true;
    ok_ = false;
    return false;
  }
  const uint8_t* p_;
  size_t n_;
  bool ok_ = true;
};

// server_name (RFC 6066 3): one host_name, printable ASCII, at most 255.
bool ParseServerName(Reader ext, std::string& sni, std::string& error) {
  Reader list = ext.Sub(ext.Uint(2));
  if (!ext.ok() || ext.left() != 0) {
    error = "malformed server_name extension";
    return false;
  }
  bool have_host = false;
  while (list.left() > 0) {
    const uint32_t type = list.Uint(1);
    std::string_view name = list.Bytes(list.Uint(2));
    if (!list.ok()) {
      error = "malformed server_name extension";
      return false;
    }
    if (type != 0) continue;  // other name types are ignored (none defined)
    if (have_host) {
      error = "server_name extension has two host names";
      return false;
    }
    have_host = true;
    if (name.empty() || name.size() > 255) {
      error = "server_name host name of " + std::to_string(name.size()) + " bytes";
      return false;
    }
    sni.clear();
    for (char c : name) {
      const auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u >= 0x7f) {
        error = "server_name host name has byte " + Hex(u);
        return false;
      }
      sni += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
  }
  return true;
}

// application_layer_protocol_negotiation (RFC 7301 3.1).
bool ParseAlpn(Reader ext, std::vector<std::string>& alpn, std::string& error) {
  Reader list = ext.Sub(ext.Uint(2));
  if (!ext.ok() || ext.left() != 0 || list.left() < 2) {
    error = "malformed ALPN extension";
    return false;
  }
  while (list.left() > 0) {
    std::string_view proto = list.Bytes(list.Uint(1));
    if (!list.ok() || proto.empty()) {
      error = "malformed ALPN extension";
      return false;
    }
    alpn.emplace_back(proto);
  }
  return true;
}

bool ParseSupportedVersions(Reader ext, bool& tls13, std::string& error) {
  Reader list = ext.Sub(ext.Uint(1));
  if (!ext.ok() || ext.left() != 0 || list.left() < 2 || list.left() % 2 != 0) {
    error = "malformed supported_versions extension";
    return false;
  }
  while (list.left() > 0) {
    if (list.Uint(2) == 0x0304) tls13 = true;
  }
  return true;
}

// The ClientHello body (after the 4-byte handshake header), RFC 8446 4.1.2.
ClientHelloPeek ParseBody(Reader body) {
  ClientHelloPeek out;
  ClientHelloInfo& hello = out.hello;
  hello.legacy_version = static_cast<uint16_t>(body.Uint(2));
  body.Skip(32);                           // random
  const size_t session_id = body.Uint(1);  // legacy_session_id <0..32>
  body.Skip(session_id);
  const size_t suites = body.Uint(2);
  body.Skip(suites);
  const size_t compressions = body.Uint(1);
  body.Skip(compressions);
  if (!body.ok() || session_id > 32 || suites < 2 || suites % 2 != 0 || compressions < 1) {
    return NotTls("malformed ClientHello");
  }
  if ((hello.legacy_version >> 8) != 3) {
    return NotTls("ClientHello version " + Hex(hello.legacy_version >> 8) + "." +
                  Hex(hello.legacy_version & 0xff) + " is not TLS");
  }
  if (body.left() == 0) {  // TLS 1.2 allows a hello without extensions
    out.status = PeekStatus::kOk;
    return out;
  }

  Reader exts = body.Sub(body.Uint(2));
  if (!body.ok() || body.left() != 0) return NotTls("malformed ClientHello extensions");
  std::vector<uint16_t> seen;
  std::string error;
  while (exts.left() > 0) {
    const auto type = static_cast<uint16_t>(exts.Uint(2));
    Reader ext = exts.Sub(exts.Uint(2));
    if (!exts.ok()) return NotTls("malformed ClientHello extensions");
    if (std::find(seen.begin(), seen.end(), type) != seen.end()) {
      return NotTls("ClientHello repeats extension " + std::to_string(type));
    }
    seen.push_back(type);
    bool ok = true;
    if (type == kExtServerName) {
      ok = ParseServerName(ext, hello.sni, error);
    } else if (type == kExtAlpn) {
      ok = ParseAlpn(ext, hello.alpn, error);
    } else if (type == kExtSupportedVersions) {
      ok = ParseSupportedVersions(ext, hello.offers_tls13, error);
    }
    if (!ok) return NotTls(error);
  }
  out.status = PeekStatus::kOk;
  return out;
}

}  // namespace

const char* PeekStatusName(PeekStatus status) {
  switch (status) {
    case PeekStatus::kNeedMore: return "kNeedMore";
    case PeekStatus::kNotTls: return "kNotTls";
    case PeekStatus::kOk: return "kOk";
  }
  return "?";
}

ClientHelloPeek ParseClientHello(std::string_view bytes) {
  const auto* in = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t size = bytes.size();
  // The handshake message, reassembled from the records it spans. Usually
  // one record: then `message` stays empty and we parse in place.
  std::string message;
  const uint8_t* msg = nullptr;
  size_t msg_have = 0;
  size_t pos = 0;  // start of the next record
  for (int record = 0;; ++record) {
    if (size < pos + 1) return NeedMore(pos + kRecordHeader);
    if (in[pos] != kHandshakeRecord) {
      return NotTls(record == 0 ? "first byte " + Hex(in[0]) + " is not a TLS handshake record"
                                : "record " + std::to_string(record + 1) + " has type " +
                                      Hex(in[pos]) + " inside a ClientHello");
    }
    if (size >= pos + 2 && in[pos + 1] != 3) {
      return NotTls("record version major " + Hex(in[pos + 1]) + " is not TLS");
    }
    if (size < pos + kRecordHeader) return NeedMore(pos + kRecordHeader);
    const size_t len = (size_t{in[pos + 3]} << 8) | in[pos + 4];
    if (len == 0 || len > kMaxRecord) {
      return NotTls("TLS record length " + std::to_string(len));
    }
    const size_t avail = std::min(len, size - pos - kRecordHeader);
    const uint8_t* payload = in + pos + kRecordHeader;
    if (record == 0) {
      msg = payload;
    } else {
      if (message.empty()) message.assign(reinterpret_cast<const char*>(msg), msg_have);
      message.append(reinterpret_cast<const char*>(payload), avail);
      msg = reinterpret_cast<const uint8_t*>(message.data());
    }
    msg_have += avail;

    // Check the handshake header as soon as its bytes are here, so junk is
    // refused early instead of waiting for a length it made up.
    if (msg_have >= 1 && msg[0] != kClientHello) {
      return NotTls("handshake message type " + std::to_string(msg[0]) + " is not ClientHello");
    }
    if (msg_have >= 4) {
      const size_t body = (size_t{msg[1]} << 16) | (size_t{msg[2]} << 8) | msg[3];
      if (body > kMaxClientHello) {
        return NotTls("ClientHello of " + std::to_string(body) + " bytes (limit " +
                      std::to_string(kMaxClientHello) + ")");
      }
      if (msg_have >= 4 + body) return ParseBody(Reader(msg + 4, body));
      if (avail < len) {
        // This record is cut short; at least its end, and then as many bytes
        // (plus one header per further record) as the message still lacks.
        return NeedMore(pos + kRecordHeader + len);
      }
    } else if (avail < len) {
      return NeedMore(pos + kRecordHeader + len);
    }
    pos += kRecordHeader + len;
  }
}

}  // namespace zrelay
