// The few pieces of IMAP syntax (RFC 9051) the gateway reads and writes
// itself: a command's tag and name, and LOGIN's two astrings, which may be
// atoms, quoted strings or literals ({N} synchronizing, {N+} not).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/result.h"

namespace zrelay::imap {

// "a1 login alice secret" -> tag "a1", name "LOGIN", rest " alice secret".
struct Command {
  std::string tag;
  std::string name;  // upper-cased
  std::string rest;  // from the space after the name on ("" when none)
};
Result<Command> ParseCommand(std::string_view line);

// A literal announced at the end of a line: `size` bytes follow the line.
struct LiteralHeader {
  size_t size = 0;
  bool synchronizing = true;  // {N}: the server answers "+" first; {N+}: not
};

// The astrings of one line (or of what follows a literal's bytes on the
// line after them), each preceded by a space.
struct LineArgs {
  std::vector<std::string> args;
  std::optional<LiteralHeader> literal;  // the last astring's bytes come next
};
// Refuses malformed input and literals over `max_literal` bytes, naming
// what is wrong.
Result<LineArgs> ParseArgs(std::string_view rest, size_t max_literal);

// LOGIN replayed to a backend: the text to send in order. Every part but
// the last ends with a synchronizing literal's header, after which the
// backend's "+" must be awaited. Quoted strings where the value allows,
// literals where it does not (CR, LF, NUL or 8-bit bytes).
std::vector<std::string> FormatLogin(std::string_view tag, std::string_view user,
                                     std::string_view password);

}  // namespace zrelay::imap
