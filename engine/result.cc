#include "engine/result.h"

#include <cerrno>
#include <cstring>

namespace zrelay {

Error Error::FromErrno(int err, std::string what) {
  std::string message = std::move(what);
  message += ": ";
  message += std::strerror(err);
  return Error(std::error_code(err, std::generic_category()), std::move(message));
}

Error Error::Invalid(std::string message) {
  return Error(std::make_error_code(std::errc::invalid_argument), std::move(message));
}

}  // namespace zrelay
