// zrelayd as a child process: start it, read its stderr, find the address it
// bound, wait for it to exit. Every wait has a deadline.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "engine/address.h"
#include "engine/result.h"

namespace zrelay::testing {

struct Process {
  pid_t pid = -1;
  int err_fd = -1;  // read end of the child's stderr
};

// Starts the zrelayd of this test's runfiles with `args`.
Process SpawnZrelayd(const std::vector<std::string>& args);

// A zrelayd run to its end (--check, usage errors): exit status as
// WaitExit's, and all it wrote.
struct Finished {
  int exit = -1;
  std::string out;
  std::string err;
};
Finished RunZrelayd(const std::vector<std::string>& args);

// Reads the child's stderr until `needle` shows up, EOF, or 10 s.
std::string ReadUntil(int fd, const std::string& needle);

// What the child wrote to `fd` until it has been quiet for 300 ms (at most
// 5 s): the rest of a log, for a failure message. Does not wait for EOF, which
// never comes while a successor shares the pipe.
std::string ReadAvailable(int fd);

// The exit status, 128 for a death by signal, or -1 after 10 s (the child is
// then killed).
int WaitExit(pid_t pid);

// The address in zrelayd's "listening on ADDR, ..." line.
Result<Address> ListeningAddress(const std::string& banner);

// With --config: the first address in "listener NAME: listening on ADDR, ...; ...".
Result<Address> ListenerAddress(const std::string& banner, const std::string& name);

// Starts `openssl s_server -quiet -rev` on 127.0.0.1:port with `args` added
// (certificates and so on) and waits until it accepts TCP connections.
// Returns its pid, or -1 if it did not come up in 10 s.
pid_t StartOpensslServer(int port, const std::string& args);

// A loopback port (127.0.0.1, or ::1 for AF_INET6) nothing listens on right now.
int FreePort(int family = AF_INET);

}  // namespace zrelay::testing
