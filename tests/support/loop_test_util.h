// Test helpers: run a loop until a condition holds, and loopback sockets.
//
// Everything here is blocking and meant for tests and benchmarks only. Waits
// always have a deadline, so a broken test fails instead of hanging.
#pragma once

#include <functional>
#include <string>
#include <utility>

#include "engine/address.h"
#include "engine/clock.h"
#include "engine/event_loop.h"
#include "engine/result.h"
#include "engine/unique_fd.h"

namespace zrelay::testing {

// Turns `loop` (on the calling thread) until `done()` is true or `deadline`
// has passed. Returns done() at the end.
bool RunUntil(EventLoop& loop, const std::function<bool()>& done, Duration deadline = seconds(5));

// Polls `done()` from a non-loop thread (for loops run by other threads)
// every `poll` until it is true or `deadline` has passed. Returns done().
bool WaitFor(const std::function<bool()>& done, Duration deadline = seconds(5),
             Duration poll = milliseconds(1));

// "127.0.0.1:<port>" or "[::1]:<port>".
Address Loopback(int family = AF_INET, int port = 0);

// A connected TCP pair on loopback: `client` from a blocking connect (then
// made non-blocking), `server` its accepted peer (non-blocking). Both have
// TCP_NODELAY. Fails the test (returns an Error) when loopback is missing.
struct SocketPair {
  UniqueFd client;
  UniqueFd server;
};
Result<SocketPair> TcpPair(int family = AF_INET);
// A connected AF_UNIX stream socketpair, both ends non-blocking.
Result<SocketPair> UnixPair();

// A blocking connect to `address` (for peers driven by a test thread).
Result<UniqueFd> BlockingConnect(const Address& address);

// Writes all of `data` to a blocking or non-blocking fd (polls on EAGAIN,
// up to `deadline`). Returns false on error or timeout.
bool WriteAll(int fd, const std::string& data, Duration deadline = seconds(5));

}  // namespace zrelay::testing
