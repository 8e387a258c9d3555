#include "tools/imap/imap_args.h"

#include <gtest/gtest.h>

namespace zrelay::imap {
namespace {

TEST(ParseCommand, SplitsTagNameAndRest) {
  auto command = ParseCommand("a1 login alice \"se cret\"");
  ASSERT_TRUE(command.ok()) << command.error().message();
  EXPECT_EQ(command->tag, "a1");
  EXPECT_EQ(command->name, "LOGIN");
  EXPECT_EQ(command->rest, " alice \"se cret\"");
  auto bare = ParseCommand("x7 NOOP");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->name, "NOOP");
  EXPECT_EQ(bare->rest, "");
}

TEST(ParseCommand, RefusesLinesWithoutTagOrName) {
  EXPECT_FALSE(ParseCommand("").ok());
  EXPECT_FALSE(ParseCommand("NOOP").ok());
  EXPECT_FALSE(ParseCommand(" NOOP").ok());
  EXPECT_FALSE(ParseCommand("a1 ").ok());
  EXPECT_FALSE(ParseCommand("a\"1 NOOP").ok());
  EXPECT_FALSE(ParseCommand("+ NOOP").ok());
}

TEST(ParseArgs, AtomsAndQuotedStringsWithEscapes) {
  auto parsed = ParseArgs(R"( alice "p\"a\\ss word")", 1024);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  ASSERT_EQ(parsed->args.size(), 2u);
  EXPECT_EQ(parsed->args[0], "alice");
  EXPECT_EQ(parsed->args[1], "p\"a\\ss word");
  EXPECT_FALSE(parsed->literal.has_value());
}

TEST(ParseArgs, EmptyQuotedStringIsAnArgument) {
  auto parsed = ParseArgs(" \"\" x", 1024);
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->args.size(), 2u);
  EXPECT_EQ(parsed->args[0], "");
  EXPECT_EQ(parsed->args[1], "x");
}

TEST(ParseArgs, LiteralsEndTheLine) {
  auto sync = ParseArgs(" alice {6}", 1024);
  ASSERT_TRUE(sync.ok()) << sync.error().message();
  ASSERT_EQ(sync->args.size(), 1u);
  ASSERT_TRUE(sync->literal.has_value());
  EXPECT_EQ(sync->literal->size, 6u);
  EXPECT_TRUE(sync->literal->synchronizing);

  auto plus = ParseArgs(" {12+}", 1024);
  ASSERT_TRUE(plus.ok());
  EXPECT_TRUE(plus->args.empty());
  ASSERT_TRUE(plus->literal.has_value());
  EXPECT_EQ(plus->literal->size, 12u);
  EXPECT_FALSE(plus->literal->synchronizing);

  auto zero = ParseArgs(" {0}", 1024);
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->literal->size, 0u);
}

TEST(ParseArgs, RefusesMalformedInputNamingIt) {
  EXPECT_FALSE(ParseArgs("alice", 1024).ok());         // no space first
  EXPECT_FALSE(ParseArgs(" alice  pass", 1024).ok());  // two spaces
  EXPECT_FALSE(ParseArgs(" alice ", 1024).ok());       // trailing space
  EXPECT_FALSE(ParseArgs(" \"open", 1024).ok());       // unterminated
  EXPECT_FALSE(ParseArgs(" \"bad\\q\"", 1024).ok());   // escape of a plain char
  EXPECT_FALSE(ParseArgs(" {5} x", 1024).ok());        // literal not at the end
  EXPECT_FALSE(ParseArgs(" {x}", 1024).ok());
  EXPECT_FALSE(ParseArgs(" {}", 1024).ok());
  EXPECT_FALSE(ParseArgs(" {+}", 1024).ok());
  EXPECT_FALSE(ParseArgs(" (x)", 1024).ok());
  auto big = ParseArgs(" {1025}", 1024);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.error().message().find("1025"), std::string::npos);
  EXPECT_FALSE(ParseArgs(" {99999999999999999999}", 1024).ok());
}

TEST(FormatLogin, QuotesWithEscapes) {
  auto parts = FormatLogin("a1", "alice", "p\"w\\d");
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0], "a1 LOGIN \"alice\" \"p\\\"w\\\\d\"\r\n");
}

TEST(FormatLogin, LiteralsForWhatAQuotedStringCannotHold) {
  auto parts = FormatLogin("a2", "bob", std::string("p\r\nw\xc3\xa9", 6));
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0], "a2 LOGIN \"bob\" {6}\r\n");
  EXPECT_EQ(parts[1], std::string("p\r\nw\xc3\xa9\r\n", 8));
}

TEST(FormatLogin, WhatItWritesParsesBackToTheSameValues) {
  const std::string user = "u\"s\\er";
  const std::string password = std::string("x\0y\nz", 5);
  auto parts = FormatLogin("t", user, password);
  ASSERT_EQ(parts.size(), 2u);
  auto command = ParseCommand(parts[0].substr(0, parts[0].size() - 2));
  ASSERT_TRUE(command.ok());
  auto first = ParseArgs(command->rest, 1024);
  ASSERT_TRUE(first.ok()) << first.error().message();
  ASSERT_EQ(first->args.size(), 1u);
  EXPECT_EQ(first->args[0], user);
  ASSERT_TRUE(first->literal.has_value());
  ASSERT_EQ(first->literal->size, password.size());
  EXPECT_EQ(parts[1].substr(0, password.size()), password);
  EXPECT_EQ(parts[1].substr(password.size()), "\r\n");
}

}  // namespace
}  // namespace zrelay::imap
