#include "tools/log/access_log.h"

#include <sys/socket.h>

#include <cstdio>

namespace zrelay {
namespace {

bool NeedsQuotes(std::string_view value) {
  if (value.empty()) return true;
  for (unsigned char c : value) {
    if (c <= ' ' || c >= 0x7f || c == '"' || c == '=' || c == '\\') return true;
  }
  return false;
}

void AppendQuoted(std::string* out, std::string_view value) {
  out->push_back('"');
  for (unsigned char c : value) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < ' ' || c >= 0x7f) {
          char hex[5];
          std::snprintf(hex, sizeof(hex), "\\x%02x", c);
          out->append(hex);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void AppendField(std::string* out, std::string_view key, std::string_view value) {
  if (!out->empty()) out->push_back(' ');
  out->append(key).push_back('=');
  if (NeedsQuotes(value)) {
    AppendQuoted(out, value);
  } else {
    out->append(value);
  }
}

void AppendNumber(std::string* out, std::string_view key, unsigned long long value) {
  char digits[24];
  std::snprintf(digits, sizeof(digits), "%llu", value);
  AppendField(out, key, digits);
}

std::string AddressOrDash(const Address& address) {
  return address.family() == AF_UNSPEC ? "-" : address.ToString();
}

}  // namespace

std::string AccessLine(std::string_view listener, const PairStats& stats) {
  std::string line;
  line.reserve(256);
  if (!listener.empty()) AppendField(&line, "listener", listener);
  AppendField(&line, "client", AddressOrDash(stats.client));
  AppendField(&line, "backend", AddressOrDash(stats.backend));
  AppendNumber(&line, "bytes_up", stats.a_to_b);
  AppendNumber(&line, "bytes_down", stats.b_to_a);
  AppendNumber(
      &line, "duration_ms",
      static_cast<unsigned long long>(std::chrono::duration_cast<milliseconds>(stats.age).count()));
  AppendField(&line, "cause", CloseCauseName(stats.cause));
  if (!stats.tls_version.empty()) AppendField(&line, "tls", stats.tls_version);
  if (!stats.sni.empty()) AppendField(&line, "sni", stats.sni);
  if (!stats.detail.empty()) {
    line.append(" detail=");
    AppendQuoted(&line, stats.detail);
  }
  return line;
}

OnClose AccessLogger(std::shared_ptr<const LogSink> sink, std::string listener) {
  return [sink = std::move(sink), listener = std::move(listener)](const PairStats& stats) {
    sink->Write(AccessLine(listener, stats));
  };
}

}  // namespace zrelay
