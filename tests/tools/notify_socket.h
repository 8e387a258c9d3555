// systemd's side of Type=notify for tests: a datagram socket a zrelayd
// started with NOTIFY_SOCKET=name() sends its sd_notify states to.
#pragma once

#include <string>

#include "engine/clock.h"
#include "engine/unique_fd.h"

namespace zrelay::testing {

class NotifySocket {
 public:
  NotifySocket();  // abstract: no path length limit, nothing to clean up
  const std::string& name() const { return name_; }

  // The next datagram, or "" after `wait`.
  std::string Next(Duration wait = seconds(10));

 private:
  std::string name_;
  UniqueFd fd_;
};

}  // namespace zrelay::testing
