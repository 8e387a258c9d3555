#include "tools/imap/imap_args.h"

#include <algorithm>
#include <cctype>

namespace zrelay::imap {

namespace {

// ATOM-CHAR of RFC 9051 (with "]", as ASTRING-CHAR allows): any CHAR but
// the specials below, controls and space.
bool IsAtomChar(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u >= 0x7f) return false;
  return std::string_view("(){%*\"\\").find(c) == std::string_view::npos;
}

// "{12}" or "{12+}" closing a line.
Result<LiteralHeader> ParseLiteralHeader(std::string_view text, size_t max_literal) {
  LiteralHeader header;
  std::string_view digits = text.substr(1, text.size() - 2);
  if (!digits.empty() && digits.back() == '+') {
    header.synchronizing = false;
    digits.remove_suffix(1);
  }
  if (digits.empty() || digits.size() > 10 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Error::Invalid("bad literal '" + std::string(text) + "'");
  }
  header.size = std::stoull(std::string(digits));
  if (header.size > max_literal) {
    return Error::Invalid("literal of " + std::to_string(header.size) + " bytes (at most " +
                          std::to_string(max_literal) + ")");
  }
  return header;
}

// A quoted string from `text` (which starts with '"'); `used` gets its length.
Result<std::string> ParseQuoted(std::string_view text, size_t& used) {
  std::string value;
  for (size_t i = 1; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') {
      used = i + 1;
      return value;
    }
    if (c == '\\') {
      if (++i == text.size() || (text[i] != '"' && text[i] != '\\')) {
        return Error::Invalid("bad escape in quoted string");
      }
      c = text[i];
    }
    value.push_back(c);
  }
  return Error::Invalid("unterminated quoted string");
}

bool QuotedIsSafe(std::string_view value) {
  return std::none_of(value.begin(), value.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return c == '\r' || c == '\n' || c == '\0' || u >= 0x80;
  });
}

}  // namespace

Result<Command> ParseCommand(std::string_view line) {
  size_t tag_end = line.find(' ');
  if (tag_end == 0 || tag_end == std::string_view::npos) {
    return Error::Invalid("no tag and command");
  }
  Command command;
  command.tag = std::string(line.substr(0, tag_end));
  if (!std::all_of(command.tag.begin(), command.tag.end(),
                   [](char c) { return IsAtomChar(c) && c != '+'; })) {
    return Error::Invalid("bad tag");
  }
  size_t name_end = std::min(line.find(' ', tag_end + 1), line.size());
  std::string_view name = line.substr(tag_end + 1, name_end - tag_end - 1);
  if (name.empty()) return Error::Invalid("no command");
  for (char c : name) command.name.push_back(static_cast<char>(std::toupper(c)));
  command.rest = std::string(line.substr(name_end));
  return command;
}

Result<LineArgs> ParseArgs(std::string_view rest, size_t max_literal) {
  LineArgs parsed;
  while (!rest.empty()) {
    if (rest[0] != ' ' || rest.size() == 1) return Error::Invalid("expected ' ' and an argument");
    rest.remove_prefix(1);
    if (rest[0] == '{') {
      if (rest.back() != '}') return Error::Invalid("a literal must end its line");
      auto header = ParseLiteralHeader(rest, max_literal);
      if (!header) return header.error();
      parsed.literal = *header;
      return parsed;
    }
    size_t used = 0;
    if (rest[0] == '"') {
      auto quoted = ParseQuoted(rest, used);
      if (!quoted) return quoted.error();
      parsed.args.push_back(std::move(*quoted));
    } else {
      while (used < rest.size() && IsAtomChar(rest[used])) ++used;
      if (used == 0) return Error::Invalid("bad character in argument");
      parsed.args.emplace_back(rest.substr(0, used));
    }
    rest.remove_prefix(used);
  }
  return parsed;
}

std::vector<std::string> FormatLogin(std::string_view tag, std::string_view user,
                                     std::string_view password) {
  std::vector<std::string> parts(1, std::string(tag) + " LOGIN");
  for (std::string_view value : {user, password}) {
    if (QuotedIsSafe(value)) {
      parts.back() += " \"";
      for (char c : value) {
        if (c == '"' || c == '\\') parts.back().push_back('\\');
        parts.back().push_back(c);
      }
      parts.back() += "\"";
    } else {
      parts.back() += " {" + std::to_string(value.size()) + "}\r\n";
      parts.emplace_back(value);
    }
  }
  parts.back() += "\r\n";
  return parts;
}

}  // namespace zrelay::imap
