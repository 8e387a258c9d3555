#include "tools/config/toml_prescan.h"

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

namespace zrelay {
namespace {

bool IsBareKeyCharacter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

bool IsControlCharacter(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return (byte < 0x20 && c != '\t' && c != '\n' && c != '\r') || byte == 0x7f;
}

// Walks the text once, keeping the line and column (in characters, as
// toml++ counts them) of the byte it is at.
class Scanner {
 public:
  Scanner(std::string_view text, std::string_view file_name) : text_(text), file_name_(file_name) {}

  std::optional<Error> Run() {
    for (size_t i = 0; i < text_.size(); ++i) {
      if (IsControlCharacter(text_[i])) {
        char code[8];
        std::snprintf(code, sizeof(code), "U+%04X", static_cast<unsigned char>(text_[i]));
        return ErrorAt(i,
                       std::string("control character ") + code + " is not allowed in a TOML file");
      }
    }
    size_t i = 0;
    while (i < text_.size()) {
      i = SkipBlanks(i);
      if (i < text_.size() && text_[i] == '[') {
        // At the start of a line, outside any value: a table header.
        size_t key = SkipBlanks(i + 1 < text_.size() && text_[i + 1] == '[' ? i + 2 : i + 1);
        if (key < text_.size() && !IsBareKeyCharacter(text_[key]) && text_[key] != '"' &&
            text_[key] != '\'' && text_[key] != ']') {
          const bool line_end = text_[key] == '\n' || text_[key] == '\r';
          return ErrorAt(key,
                         "a table header's key starts with " +
                             (line_end ? "a line end" : "'" + std::string(1, text_[key]) + "'") +
                             ", not a letter, digit, '-', '_' or quote");
        }
        i = SkipStatement(key, '[');
      } else {
        i = SkipStatement(i, '\n');
      }
      if (problem_) return problem_;
    }
    return std::nullopt;
  }

 private:
  size_t SkipBlanks(size_t i) const {
    while (i < text_.size() && (text_[i] == ' ' || text_[i] == '\t')) ++i;
    return i;
  }

  // A key/value line (or the rest of a header, or a blank or comment line),
  // to the newline that ends it: past strings, comments and the lines of a
  // multi-line array. `after` is the character before `i` that counts (a
  // line start, or a header's '['). Notes in problem_ the first non-ASCII
  // byte outside strings and comments, and the first quote that cannot open
  // a string (one glued to a key or value: toml++ reads on through it).
  size_t SkipStatement(size_t i, char after) {
    int depth = 0;          // open '[' and '{' of the value
    char previous = after;  // the last character outside blanks, strings and comments
    while (i < text_.size()) {
      const char c = text_[i];
      if (c == '"' || c == '\'') {
        if (std::string_view("\n=[{,.").find(previous) == std::string_view::npos) {
          return Problem(i, "a quote in the middle of a key or value");
        }
        i = SkipString(i);
        previous = c;
      } else if (c == '#') {
        while (i < text_.size() && text_[i] != '\n') ++i;
      } else if (c == '\n') {
        ++i;
        previous = c;
        if (depth == 0) return i;
      } else if (static_cast<unsigned char>(c) >= 0x80) {
        return Problem(i, "a non-ASCII character outside a string or comment");
      } else {
        if (c == '[' || c == '{') ++depth;
        if ((c == ']' || c == '}') && depth > 0) --depth;
        if (c != ' ' && c != '\t' && c != '\r') previous = c;
        ++i;
      }
    }
    return i;
  }

  size_t Problem(size_t at, std::string what) {
    problem_ = ErrorAt(at, std::move(what));
    return text_.size();
  }

  // From an opening quote to past the closing one: "basic" (with backslash
  // escapes), 'literal', and their multi-line """/''' forms. A single-line
  // string ends at a newline too (an error toml++ reports).
  size_t SkipString(size_t i) {
    const char quote = text_[i];
    const std::string triple(3, quote);
    const bool multi_line = text_.substr(i, 3) == triple;
    i += multi_line ? 3 : 1;
    while (i < text_.size()) {
      if (quote == '"' && text_[i] == '\\') {
        if (multi_line) {
          // toml++ tests what follows a backslash (a line continuation
          // skips blanks and line ends) with the whitespace test that is
          // undefined for non-ASCII characters.
          size_t next = i + 1;
          while (next < text_.size() &&
                 std::string_view(" \t\r\n").find(text_[next]) != std::string_view::npos) {
            ++next;
          }
          if (next < text_.size() && static_cast<unsigned char>(text_[next]) >= 0x80) {
            return Problem(next,
                           "a non-ASCII character after a backslash in a multi-line "
                           "string (toml++ cannot read it)");
          }
        }
        i += 2;
      } else if (multi_line && text_.substr(i, 3) == triple) {
        // Up to two more quotes may close it: """a""""" is a"".
        i += 3;
        while (i < text_.size() && text_[i] == quote) ++i;
        return i;
      } else if (!multi_line && (text_[i] == quote || text_[i] == '\n')) {
        return text_[i] == quote ? i + 1 : i;
      } else {
        ++i;
      }
    }
    return i;
  }

  Error ErrorAt(size_t at, std::string what) const {
    uint32_t line = 1;
    uint32_t column = 1;
    for (size_t i = 0; i < at; ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else if ((static_cast<unsigned char>(text_[i]) & 0xc0) != 0x80) {
        ++column;  // UTF-8 continuation bytes share their character's column
      }
    }
    return Error::Invalid(std::string(file_name_) + ":" + std::to_string(line) + ":" +
                          std::to_string(column) + ": " + what);
  }

  std::string_view text_;
  std::string_view file_name_;
  std::optional<Error> problem_;
};

}  // namespace

std::optional<Error> PrescanToml(std::string_view text, std::string_view file_name) {
  return Scanner(text, file_name).Run();
}

std::string WithoutNonAscii(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x80) {
      out += c;
    } else if (byte >= 0xc0) {
      out += 'x';  // a sequence's first byte; its continuation bytes (0x80..0xbf) are dropped
    }
  }
  return out;
}

}  // namespace zrelay
