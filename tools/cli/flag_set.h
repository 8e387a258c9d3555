// FlagSet: the flags of one command line, split by CLI11 and converted by the
// parsers of values.h, so every usage error names the flag and quotes the
// value. zrelayd and zrelay-load both parse through it.
//
// What CLI11 alone would get wrong for us, and FlagSet settles:
// - a boolean flag is true when bare and takes a value only as --flag=VALUE
//   (true, false, yes, no, on, off, 1, 0); any other value, an empty one
//   ("--flag=") included, is an error, never a silent true;
// - a flag CLI11 does not know, or a stray word, is an error in our wording
//   rather than an exception or a quietly ignored extra;
// - of several bad values, the first on the command line is reported.
#pragma once

#include <CLI/CLI.hpp>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "engine/result.h"

namespace zrelay {

class FlagSet {
 public:
  // What a flag given twice means.
  enum class Repeats { kLastWins, kRefused };
  // Stores a flag's value, or says what is wrong with it (without the flag's
  // name: FlagSet prefixes it).
  using Setter = std::function<Status(const std::string& value)>;
  // The message for a flag the app does not know ("--x" without its value),
  // or "" for the default "unknown flag '--x'".
  using UnknownFlag = std::function<std::string(const std::string& flag)>;

  // Flags are added to `app`, which must outlive the FlagSet. The app keeps
  // extra arguments so Parse can report them.
  FlagSet(CLI::App& app, Repeats repeats);

  // A flag with one value: "--name VALUE" or "--name=VALUE".
  CLI::Option* Value(const std::string& name, const std::string& type, const std::string& help,
                     Setter set);
  // A boolean flag. `inverted`: *field holds the opposite (a flag that turns
  // something off). *field is written by Parse only when the flag is given.
  CLI::Option* Bool(const std::string& name, bool* field, const std::string& help,
                    bool inverted = false);

  // Parses `args` (without the program name). Errors, in this order: an
  // empty boolean ("--json="); a value CLI11 found missing ("--conns: 1
  // required N missing"); the first unknown flag or stray argument; with
  // Repeats::kRefused, the first flag given twice; the first bad value on
  // the command line.
  Status Parse(const std::vector<std::string>& args, const UnknownFlag& unknown_flag = nullptr);

 private:
  struct Flag {
    const CLI::Option* option = nullptr;
    bool* field = nullptr;  // booleans only
    bool inverted = false;
    std::string text;  // a boolean as given; empty when absent (a bare one reads "true")
    Status error;      // the value a setter refused
  };
  const Flag* Find(const CLI::Option* option) const;
  Status CheckLeftovers(const UnknownFlag& unknown_flag) const;
  Status CheckRepeats() const;
  Status CheckValues();

  CLI::App& app_;
  Repeats repeats_;
  std::deque<Flag> flags_;  // a deque: CLI11 and the setters keep pointers into it
};

}  // namespace zrelay
