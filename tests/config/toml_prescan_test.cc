// PrescanToml: valid TOML always passes, whatever its strings, comments and
// multi-line arrays hold; table headers toml++ would trip on and control
// characters are refused with the line and column.
#include "tools/config/toml_prescan.h"

#include <gtest/gtest.h>

#include <string>

namespace zrelay {
namespace {

std::string Verdict(std::string_view text) {
  std::optional<Error> error = PrescanToml(text, "zrelayd.toml");
  return error ? error->message() : "(passes)";
}

TEST(TomlPrescan, ValidTomlPasses) {
  const char* const valid[] = {
      "",
      "[[listener]]\nname = \"web\"\n\n[[listener.backend]]\naddress = \"10.0.0.1:1\"\n",
      "[ listener ]\n[\t\"quoted key\" ]\n['literal'.x]\n[a.b] # a [ comment\n",
      // Lines that start with '[' inside values are not table headers.
      "x = \"\"\"\n[|\n\"\"\"\n",
      "x = '''\n[=\n'''\n",
      "x = [\n  [+1],\n  [{ a = 1 }],\n  [ [2] ],\n]\n",
      "x = [ # ] does not close it\n  [.5] ]\n",
      // Quotes inside strings: escaped, doubled at a multi-line end, or literal backslashes.
      "x = \"a\\\"[ok]\"\n",
      "x = \"\"\"a\\\"\"\"\n[|]\n\"\"\"\n",
      "x = \"\"\"a\"\"\"\"\"\n[ok]\n",
      "x = 'C:\\'\n[ok]\n",
      "\"[|\" = 1\n",
      "x = \"tab\there\"\r\n[ok]\r\n",
      // Non-ASCII text in strings, quoted keys and comments.
      "x = \"\xc3\xa9\" # \xe3\x81\x82\n[\"\xc3\xa9\"]\n'\xc3\xa9' = '''\xef\xbb\xbf'''\n",
  };
  for (const char* text : valid) EXPECT_EQ(Verdict(text), "(passes)") << text;
}

TEST(TomlPrescan, HeadersTomlPlusPlusTripsOnAreRefused) {
  EXPECT_EQ(Verdict("[|]"),
            "zrelayd.toml:1:2: a table header's key starts with '|', not a letter, digit, '-', "
            "'_' or quote");
  EXPECT_EQ(Verdict("a = 1\n  [[ =]]\n"),
            "zrelayd.toml:2:6: a table header's key starts with '=', not a letter, digit, '-', "
            "'_' or quote");
  EXPECT_EQ(Verdict("x = \"é\"\n[.a]\n"),
            "zrelayd.toml:2:2: a table header's key starts with '.', not a letter, digit, '-', "
            "'_' or quote");
  EXPECT_EQ(Verdict("x = \"\"\"a\"\"\"\"\n[#]\n"),
            "zrelayd.toml:2:2: a table header's key starts with '#', not a letter, digit, '-', "
            "'_' or quote");
  EXPECT_EQ(Verdict("[\n"),
            "zrelayd.toml:1:2: a table header's key starts with a line end, not a letter, "
            "digit, '-', '_' or quote");
  // Left for toml++, which reports them itself: an empty key, a header cut short.
  EXPECT_EQ(Verdict("[]\n"), "(passes)");
  EXPECT_EQ(Verdict("[["), "(passes)");
}

TEST(TomlPrescan, NonAsciiOutsideStringsAndCommentsIsRefused) {
  EXPECT_EQ(Verdict("fam\xc3\xa9 = 1\n"),
            "zrelayd.toml:1:4: a non-ASCII character outside a string or comment");
  EXPECT_EQ(Verdict("x = \"a\" \xe3\x81\x82\n"),
            "zrelayd.toml:1:9: a non-ASCII character outside a string or comment");
  EXPECT_EQ(Verdict("x = [\n  \xef\xbb\xbf"
                    "1]\n"),
            "zrelayd.toml:2:3: a non-ASCII character outside a string or comment");
  EXPECT_EQ(Verdict("[a.\xc3\xa9]\n"),
            "zrelayd.toml:1:4: a non-ASCII character outside a string or comment");
  // A quote glued to a value does not open a string: toml++ reads on.
  EXPECT_EQ(Verdict("x = 1a\"\xc3\xa9\"\n"),
            "zrelayd.toml:1:7: a quote in the middle of a key or value");
  EXPECT_EQ(Verdict("x = \"a\" 'b'\n"),
            "zrelayd.toml:1:9: a quote in the middle of a key or value");
  EXPECT_EQ(Verdict("[a\"b\"]\n"), "zrelayd.toml:1:3: a quote in the middle of a key or value");
}

TEST(TomlPrescan, NonAsciiAfterABackslashInAMultiLineStringIsRefused) {
  EXPECT_EQ(Verdict("x = \"\"\"a\\\n  \xc3\xa9\"\"\"\n"),
            "zrelayd.toml:2:3: a non-ASCII character after a backslash in a multi-line string "
            "(toml++ cannot read it)");
  EXPECT_EQ(Verdict("x = \"\"\"\\\xc3\xa9\"\"\"\n"),
            "zrelayd.toml:1:9: a non-ASCII character after a backslash in a multi-line string "
            "(toml++ cannot read it)");
  // Elsewhere a backslash may precede one: a single-line string, an escape
  // before it, a literal string.
  EXPECT_EQ(Verdict("x = \"\\\\\xc3\xa9\"\ny = \"\"\"\\n\xc3\xa9\"\"\"\nz = '''\\\xc3\xa9'''\n"),
            "(passes)");
}

TEST(TomlPrescan, WithoutNonAsciiKeepsLinesColumnsAndStructure) {
  EXPECT_EQ(WithoutNonAscii("x = \"\xc3\xa9t\xc3\xa9\" # \xe3\x81\x82\n\xf0\x9f\x98\x80"),
            "x = \"xtx\" # x\nx");
  EXPECT_EQ(WithoutNonAscii("a\x80\xbf"
                            "b\xff"),
            "abx");
}

TEST(TomlPrescan, QuotesOpenStringsWhereTomlAllowsThem) {
  const char* const valid[] = {
      "\"a\" = 1\n'b' = 2\na.\"b\" . 'c' = 3\n",
      "x = [ \"a\" , 'b',\n  \"c\" ]\n",
      "x = { \"a\" = \"b\", c = 'd' }\n",
      "[ \"a\" . 'b' ]\n[[\"c\"]]\n",
  };
  for (const char* text : valid) EXPECT_EQ(Verdict(text), "(passes)") << text;
}

TEST(TomlPrescan, ControlCharactersAreRefused) {
  EXPECT_EQ(Verdict(std::string("user = \"a\0\"\n", 12)),
            "zrelayd.toml:1:10: control character U+0000 is not allowed in a TOML file");
  EXPECT_EQ(Verdict("# comment \x01\n"),
            "zrelayd.toml:1:11: control character U+0001 is not allowed in a TOML file");
  EXPECT_EQ(Verdict("a = 1\nb = \"\x7f\"\n"),
            "zrelayd.toml:2:6: control character U+007F is not allowed in a TOML file");
  EXPECT_EQ(Verdict("a = \"\xc3\xa9\x1b\"\n"),
            "zrelayd.toml:1:7: control character U+001B is not allowed in a TOML file");
}

}  // namespace
}  // namespace zrelay
