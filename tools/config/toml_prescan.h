// What a configuration file must not hold before toml++ (Debian's 3.3.0)
// parses it: text toml++ would refuse anyway, but trips on first.
//
//   - A table header whose first key starts with neither a bare-key
//     character nor a quote ("[|x]", "[=]"): toml++ asserts that it never
//     does, so a build with assertions aborts, and an optimised clang build
//     takes it as a promise (__builtin_assume) and reads on undefined.
//   - A non-ASCII character outside strings and comments (TOML's bare keys
//     are ASCII): toml++'s is-it-whitespace test for it reaches
//     __builtin_unreachable for most code points (U+00E9 'é' among them),
//     undefined behaviour in every build. For the same reason a quote glued
//     to a key or value (x = 1a"é") is refused: toml++ reads on through it,
//     where a string cannot start. And in a multi-line basic string, a
//     non-ASCII character after a backslash and blanks or line ends: valid
//     TOML after a line continuation, but toml++ tests it for whitespace
//     too. This is the one valid text refused.
//   - A control character other than tab and the line ends: TOML allows
//     none anywhere, not even in comments or strings, and refusing them all
//     up front keeps them out of the paths that lead to the header above.
//
// To find the table headers it follows TOML's strings (all four kinds),
// comments and the brackets of multi-line arrays, exactly as TOML defines
// them, so valid TOML passes (but for the continuation case above).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "engine/result.h"

namespace zrelay {

// nullopt, or an error "FILE:LINE:COLUMN: what", as toml++'s own are.
// Exact for text whose structure is valid TOML: the caller first has
// toml++ parse WithoutNonAscii(text), which it can do safely.
std::optional<Error> PrescanToml(std::string_view text, std::string_view file_name);

// `text` with each non-ASCII character (a UTF-8 sequence) replaced by one
// 'x', stray continuation bytes dropped: the same lines, columns and
// structure, and nothing toml++ 3.3 misreads.
std::string WithoutNonAscii(std::string_view text);

}  // namespace zrelay
