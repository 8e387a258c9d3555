// Peers for relay tests: blocking sockets driven by test threads, sending
// and checking a deterministic byte pattern so every transfer is verified
// byte for byte without keeping a copy of what was sent.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/result.h"
#include "engine/unique_fd.h"
#include "relay/relay.h"

namespace zrelay::testing {

// Byte `offset` of the pattern stream `seed`.
uint8_t PatternByte(uint64_t seed, uint64_t offset);
// Fills `buf` with pattern bytes [offset, offset + len).
void FillPattern(uint64_t seed, uint64_t offset, char* buf, size_t len);

// Sends `size` pattern bytes in `chunk`-sized writes on a blocking fd; with
// `shut_write` sends FIN afterwards. Returns bytes sent (short on error).
uint64_t SendPattern(int fd, uint64_t seed, uint64_t size, size_t chunk = 64 << 10,
                     bool shut_write = true);

struct Received {
  uint64_t bytes = 0;
  int64_t first_mismatch = -1;  // offset of the first wrong byte, -1: none
  int error = 0;                // errno of a failed read (e.g. ECONNRESET), 0 at EOF
};
// Reads from a blocking fd until EOF or error, checking every byte against
// pattern `seed`.
Received ReceivePattern(int fd, uint64_t seed, size_t chunk = 64 << 10);

// Two connected stream sockets: `app` is the test's end (blocking), `leg`
// goes to the relay. Family AF_INET, AF_INET6 or AF_UNIX.
struct LegPair {
  UniqueFd app;
  UniqueFd leg;
};
Result<LegPair> MakeLegPair(int family);

void SetBlocking(int fd, bool blocking);
// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new limit.
size_t RaiseFdLimit();
// Resident set size of this process, in KiB.
size_t RssKiB();

// The io backend this test binary runs its engines on: ZRELAY_TEST_IO
// ("epoll" or "uring"), as tests/relay/engine_test.bzl sets it; epoll when
// unset. A value it cannot parse fails the test that asks.
IoBackend TestIo();
// Engine::Start with `options.io` = TestIo(): how every relay test starts
// its engine, so the suite runs on both backends.
Result<std::unique_ptr<Engine>> StartEngine(EngineOptions options = {});

}  // namespace zrelay::testing
