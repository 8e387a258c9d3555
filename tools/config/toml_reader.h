// Typed reads from a parsed TOML table, for zrelayd's configuration file.
//
// A TableReader reads one table (the file's root, one [[listener]], one
// [listener.health], ...) at one key path ("listener[0]"). Each read checks
// the value's type and range and stores it; a key that is absent leaves the
// default in place. The first error of the whole file is kept, as one line
//
//   zrelayd.toml:12: listener[0].backend[1].weight: expected an integer 1..256, got "two"
//
// and later reads carry on without effect, so the schema code reads as a list
// of keys instead of a ladder of early returns. Finish() then reports the
// first key (in file order) that no read asked for: a typo never silently
// does nothing.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/clock.h"
#include "engine/result.h"

namespace zrelay {

// The first error found in one file.
class ConfigErrors {
 public:
  explicit ConfigErrors(std::string_view file) : file_(file) {}

  bool ok() const { return !first_.has_value(); }
  const Error& error() const { return *first_; }

  // "file:line: path: what" (just "file: path: what" for line 0). Ignored
  // once an error is kept.
  void Add(uint32_t line, std::string_view path, std::string_view what);

 private:
  std::string file_;
  std::optional<Error> first_;
};

class TableReader {
 public:
  // `path` is the table's key path ("" for the root, "listener[0]").
  TableReader(const toml::table& table, std::string path, ConfigErrors& errors)
      : table_(table), path_(std::move(path)), errors_(errors) {}

  bool ok() const { return errors_.ok(); }
  // "listener[0].weight" for `key` in this table.
  std::string PathOf(std::string_view key) const;

  // The value of `key`, or null when absent. Marks the key known.
  const toml::node* Get(std::string_view key);
  bool Has(std::string_view key) const { return table_.contains(key); }

  // Each returns true when the key is present and its value valid (and
  // stored in *out); false when absent (*out untouched) or invalid (error kept).
  bool Bool(std::string_view key, bool* out);
  bool Int(std::string_view key, int64_t min, int64_t max, int64_t* out);
  // A non-empty string.
  bool String(std::string_view key, std::string* out);
  // A string for ParseDuration: "2s", "500ms", "1.5m".
  bool Duration(std::string_view key, bool allow_zero, zrelay::Duration* out);
  // A string for ParseSize ("64k", "1M") or a whole number of bytes; above 0.
  bool Size(std::string_view key, uint64_t* out);

  // A string that `parse` (a function returning Result<T>) turns into *out;
  // its error message is kept after the key path. `expected` says what fits
  // when the value is not a string.
  template <typename T, typename Parse>
  bool Parsed(std::string_view key, std::string_view expected, Parse parse, T* out) {
    const toml::node* node = StringValue(key, expected);
    if (node == nullptr) return false;
    Result<T> value = parse(node->as_string()->get());
    if (!value.ok()) {
      Fail(*node, PathOf(key), value.error().message());
      return false;
    }
    *out = std::move(value.value());
    return true;
  }

  // One non-empty string, or a non-empty array of them, with the key path
  // and node of each (for messages about one item): "listen" or "listen[1]".
  struct Item {
    std::string text;
    std::string path;
    const toml::node* node;
  };
  // `what` names one item in messages ("an address").
  std::vector<Item> Strings(std::string_view key, std::string_view what);

  // A non-empty array of tables ([[listener]]), each with its path ("listener[0]").
  struct SubTable {
    const toml::table* table;
    std::string path;
  };
  std::vector<SubTable> Tables(std::string_view key);
  // A table ([listener.health] or an inline table); null when absent or not a table.
  const toml::table* Table(std::string_view key);

  // Keeps an error about `at` (a value in this table or below).
  void Fail(const toml::node& at, std::string_view path, std::string_view what);
  // Keeps an error about a required key that is absent, on the table's line.
  void Missing(std::string_view key, std::string_view expected);
  // Keeps an error about the table as a whole.
  void FailTable(std::string_view key, std::string_view what);

  // Keeps an error for the first key in the table that no Get asked for.
  void Finish();

 private:
  // The node of `key` when it is a string; null when absent or not a string
  // (then an error saying `expected` is kept).
  const toml::node* StringValue(std::string_view key, std::string_view expected);

  const toml::table& table_;
  std::string path_;
  ConfigErrors& errors_;
  std::vector<std::string> known_;  // keys asked for, the candidates for "did you mean"
};

// A string as TOML would write it: in double quotes, with '"', '\\' and
// control characters escaped.
std::string QuoteString(std::string_view text);

// `text` with its control characters (a newline among them) written as
// \uXXXX, so that a message quoting it stays on one line.
std::string EscapeControlCharacters(std::string_view text);

// How a value reads in a message: "two" (quoted), 2, 2.5, true, an array,
// a table, a date.
std::string DescribeValue(const toml::node& node);

// The line of a value (0 when toml++ does not know it).
uint32_t LineOf(const toml::node& node);

}  // namespace zrelay
