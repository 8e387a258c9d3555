#include "ssl/openssl_errors.h"

#include <openssl/err.h>

namespace zrelay {

std::string TakeOpenSslErrors() {
  std::string out;
  const char* data = nullptr;
  int flags = 0;
  // ERR_get_error_all pops the oldest entry; the queue holds at most 16.
  while (unsigned long e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    std::string entry = buf;
    if ((flags & ERR_TXT_STRING) && data != nullptr && *data != '\0') {
      entry += " (";
      entry += data;
      entry += ")";
    }
    AppendDetail(out, entry);
  }
  ERR_clear_error();  // belt and braces: also resets marks
  return out;
}

void AppendDetail(std::string& text, const std::string& more) {
  if (more.empty()) return;
  if (!text.empty()) text += "; ";
  text += more;
}

}  // namespace zrelay
