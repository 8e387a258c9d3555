#include "tools/config/toml_reader.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "tools/cli/values.h"

namespace zrelay {
namespace {

// Lower case, '-' as '_': how a key typed from memory of the flags compares.
std::string Normalize(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c == '-') c = '_';
  }
  return out;
}

// One edit apart: a character changed, added, dropped, or two neighbours
// swapped.
bool OneEditApart(std::string_view a, std::string_view b) {
  if (a.size() > b.size()) std::swap(a, b);
  if (b.size() - a.size() > 1) return false;
  size_t i = 0;
  while (i < a.size() && a[i] == b[i]) ++i;
  if (i == a.size()) return true;  // equal, or b has one more at the end
  if (a.size() < b.size()) return a.substr(i) == b.substr(i + 1);
  if (a.substr(i + 1) == b.substr(i + 1)) return true;
  return i + 1 < a.size() && a[i] == b[i + 1] && a[i + 1] == b[i] &&
         a.substr(i + 2) == b.substr(i + 2);
}

// A known key the unknown one is a trivial typo of (case, '-' for '_', or
// one edit), or empty.
std::string Suggest(std::string_view unknown, const std::vector<std::string>& known) {
  std::string typed = Normalize(unknown);
  for (const std::string& candidate : known) {
    if (OneEditApart(typed, candidate)) return candidate;
  }
  return {};
}

// The TOML header of a key path: "listener.backend" for "listener[0].backend".
std::string HeaderOf(std::string_view path) {
  std::string out;
  bool in_index = false;
  for (char c : path) {
    if (c == '[') in_index = true;
    if (!in_index) out += c;
    if (c == ']') in_index = false;
  }
  return out;
}

}  // namespace

std::string EscapeControlCharacters(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", static_cast<unsigned char>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out;
}

std::string QuoteString(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return "\"" + EscapeControlCharacters(out) + "\"";
}

std::string DescribeValue(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return QuoteString(node.as_string()->get());
    case toml::node_type::integer:
      return std::to_string(node.as_integer()->get());
    case toml::node_type::floating_point: {
      char text[32];
      auto [end, ec] = std::to_chars(text, text + sizeof(text), node.as_floating_point()->get());
      std::string out(text, ec == std::errc() ? end : text);
      // 2.0 prints as "2": keep it from reading like the integer it is not.
      if (out.find_first_not_of("-0123456789") == std::string::npos) out += ".0";
      return out;
    }
    case toml::node_type::boolean:
      return node.as_boolean()->get() ? "true" : "false";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

uint32_t LineOf(const toml::node& node) { return node.source().begin.line; }

void ConfigErrors::Add(uint32_t line, std::string_view path, std::string_view what) {
  if (first_) return;
  std::string message = file_;
  if (line > 0) message += ":" + std::to_string(line);
  message += ": ";
  // Keys and values are quoted as written, and may hold a newline.
  if (!path.empty()) message += EscapeControlCharacters(path) + ": ";
  message += EscapeControlCharacters(what);
  first_ = Error::Invalid(std::move(message));
}

std::string TableReader::PathOf(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

const toml::node* TableReader::Get(std::string_view key) {
  if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.emplace_back(key);
  return table_.get(key);
}

void TableReader::Fail(const toml::node& at, std::string_view path, std::string_view what) {
  errors_.Add(LineOf(at), path, what);
}

void TableReader::Missing(std::string_view key, std::string_view expected) {
  FailTable(key, "missing; expected " + std::string(expected));
}

void TableReader::FailTable(std::string_view key, std::string_view what) {
  // The root's line would be 1 whatever the file holds: name the file only.
  errors_.Add(path_.empty() ? 0 : LineOf(table_), PathOf(key), what);
}

bool TableReader::Bool(std::string_view key, bool* out) {
  const toml::node* node = Get(key);
  if (node == nullptr) return false;
  if (!node->is_boolean()) {
    Fail(*node, PathOf(key), "expected true or false, got " + DescribeValue(*node));
    return false;
  }
  *out = node->as_boolean()->get();
  return true;
}

bool TableReader::Int(std::string_view key, int64_t min, int64_t max, int64_t* out) {
  const toml::node* node = Get(key);
  if (node == nullptr) return false;
  if (!node->is_integer() || node->as_integer()->get() < min || node->as_integer()->get() > max) {
    Fail(*node, PathOf(key),
         "expected an integer " + std::to_string(min) + ".." + std::to_string(max) + ", got " +
             DescribeValue(*node));
    return false;
  }
  *out = node->as_integer()->get();
  return true;
}

bool TableReader::String(std::string_view key, std::string* out) {
  const toml::node* node = StringValue(key, "a non-empty string");
  if (node == nullptr) return false;
  if (node->as_string()->get().empty()) {
    Fail(*node, PathOf(key), "expected a non-empty string, got \"\"");
    return false;
  }
  *out = node->as_string()->get();
  return true;
}

const toml::node* TableReader::StringValue(std::string_view key, std::string_view expected) {
  const toml::node* node = Get(key);
  if (node != nullptr && !node->is_string()) {
    Fail(*node, PathOf(key), "expected " + std::string(expected) + ", got " + DescribeValue(*node));
    return nullptr;
  }
  return node;
}

bool TableReader::Duration(std::string_view key, bool allow_zero, zrelay::Duration* out) {
  const toml::node* node = StringValue(key, R"(a duration string such as "2s" or "500ms")");
  if (node == nullptr) return false;
  Result<zrelay::Duration> value = ParseDuration(node->as_string()->get(), allow_zero);
  if (!value.ok()) {
    Fail(*node, PathOf(key), value.error().message());
    return false;
  }
  *out = *value;
  return true;
}

bool TableReader::Size(std::string_view key, uint64_t* out) {
  const toml::node* node = Get(key);
  if (node == nullptr) return false;
  std::optional<uint64_t> size;
  if (node->is_integer() && node->as_integer()->get() > 0) {
    size = static_cast<uint64_t>(node->as_integer()->get());
  } else if (node->is_string()) {
    Result<uint64_t> parsed = ParseSize(node->as_string()->get());
    if (!parsed.ok()) {
      Fail(*node, PathOf(key), parsed.error().message());
      return false;
    }
    if (*parsed > 0) size = *parsed;
  }
  if (!size) {
    Fail(*node, PathOf(key),
         R"(expected a size above 0 such as "64k" or "1M" or a number of bytes, got )" +
             DescribeValue(*node));
    return false;
  }
  *out = *size;
  return true;
}

std::vector<TableReader::Item> TableReader::Strings(std::string_view key, std::string_view what) {
  const toml::node* node = Get(key);
  if (node == nullptr) return {};
  const std::string path = PathOf(key);
  const std::string expected =
      "expected " + std::string(what) + " or an array of them, got " + DescribeValue(*node);
  if (node->is_string()) {
    if (node->as_string()->get().empty()) {
      Fail(*node, path, expected);
      return {};
    }
    return {{node->as_string()->get(), path, node}};
  }
  if (!node->is_array() || node->as_array()->empty()) {
    Fail(*node, path,
         node->is_array()
             ? "expected " + std::string(what) + " or a non-empty array of them, got an empty array"
             : expected);
    return {};
  }
  std::vector<Item> items;
  const toml::array& array = *node->as_array();
  for (size_t i = 0; i < array.size(); ++i) {
    const toml::node& item = array[i];
    std::string item_path = path + "[" + std::to_string(i) + "]";
    if (!item.is_string() || item.as_string()->get().empty()) {
      Fail(item, item_path, "expected " + std::string(what) + ", got " + DescribeValue(item));
      return {};
    }
    items.push_back({item.as_string()->get(), std::move(item_path), &item});
  }
  return items;
}

std::vector<TableReader::SubTable> TableReader::Tables(std::string_view key) {
  const toml::node* node = Get(key);
  if (node == nullptr) return {};
  const std::string path = PathOf(key);
  if (!node->is_array()) {
    Fail(*node, path,
         "expected an array of tables ([[" + HeaderOf(path) + "]]), got " + DescribeValue(*node));
    return {};
  }
  const toml::array& array = *node->as_array();
  if (array.empty()) {
    Fail(*node, path, "expected at least one [[" + HeaderOf(path) + "]], got an empty array");
    return {};
  }
  std::vector<SubTable> tables;
  for (size_t i = 0; i < array.size(); ++i) {
    std::string item_path = path + "[" + std::to_string(i) + "]";
    if (!array[i].is_table()) {
      Fail(array[i], item_path, "expected a table, got " + DescribeValue(array[i]));
      return {};
    }
    tables.push_back({array[i].as_table(), std::move(item_path)});
  }
  return tables;
}

const toml::table* TableReader::Table(std::string_view key) {
  const toml::node* node = Get(key);
  if (node == nullptr) return nullptr;
  if (!node->is_table()) {
    Fail(*node, PathOf(key), "expected a table, got " + DescribeValue(*node));
    return nullptr;
  }
  return node->as_table();
}

void TableReader::Finish() {
  const toml::key* first = nullptr;
  for (const auto& [key, node] : table_) {
    if (std::find(known_.begin(), known_.end(), key.str()) != known_.end()) continue;
    const toml::source_position& at = key.source().begin;
    if (first == nullptr || at.line < first->source().begin.line ||
        (at.line == first->source().begin.line && at.column < first->source().begin.column)) {
      first = &key;
    }
  }
  if (first == nullptr) return;
  std::string what = "unknown key";
  if (std::string suggestion = Suggest(first->str(), known_); !suggestion.empty()) {
    what += " (did you mean \"" + suggestion + "\"?)";
  }
  errors_.Add(first->source().begin.line, PathOf(first->str()), what);
}

}  // namespace zrelay
