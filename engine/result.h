// Error and Result: how zrelay reports failure without exceptions.
//
// Setup and configuration return Result<T>: a value, or an Error that carries
// an errno-style code and a message naming the thing that failed ("bad
// address '1.2.3:x': port is not a number"). The data path never builds
// messages; it uses SysResult (engine/syscalls.h).
#pragma once

#include <string>
#include <system_error>
#include <utility>
#include <variant>

#include "engine/check.h"

namespace zrelay {

class Error {
 public:
  Error(std::error_code code, std::string message)
      : code_(code), message_(std::move(message)) {}
  // An error from errno `err`, with `what` saying what was attempted.
  static Error FromErrno(int err, std::string what);
  // A configuration or usage error (EINVAL) with a message.
  static Error Invalid(std::string message);

  const std::error_code& code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  std::error_code code_;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT: implicit on purpose
  Result(Error error) : v_(std::move(error)) {}      // NOLINT: implicit on purpose

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  // Reading the value of an error is a bug in the caller: it checks ok() first.
  T& value() & { CheckOk(); return std::get<0>(v_); }
  const T& value() const& { CheckOk(); return std::get<0>(v_); }
  T&& value() && { CheckOk(); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

  const Error& error() const {
    ZR_CHECK(!ok(), "error() of a Result that holds a value");
    return std::get<1>(v_);
  }

 private:
  void CheckOk() const {
    ZR_CHECK(ok(), "value() of a failed Result: %s", std::get<1>(v_).message().c_str());
  }
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  static Status Ok() { return Status(); }

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    ZR_CHECK(!ok_, "error() of an ok Status");
    return error_;
  }

 private:
  Error error_{std::error_code(), std::string()};
  bool ok_ = true;
};

}  // namespace zrelay
