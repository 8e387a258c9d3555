// The peers zrelayd meets in production, run as real processes for
// end-to-end tests: HAProxy, nginx (its stream module) and the openssl tool.
// Every wait is bounded; each process is stopped by its pid.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <thread>

#include "engine/address.h"
#include "engine/result.h"
#include "engine/unique_fd.h"
#include "tests/tools/zrelayd_process_util.h"

namespace zrelay::testing {

// The path of program `name` in the usual bin and sbin directories (bazel
// runs tests with a PATH that has no sbin, where haproxy and nginx live);
// `name` itself when none has it.
std::string FindProgram(const std::string& name);

// Runs `command` with /bin/sh, its stdout and stderr appended to the file
// `log` (for a failing test to show).
pid_t SpawnShell(const std::string& command, const std::string& log);

// Whether something listens on TCP 127.0.0.1:`port` within 10 s. It reads
// /proc/net/tcp instead of connecting: a probe would be one more client to
// the peer (and through it, to zrelayd).
bool WaitListening(int port);

// SIGTERM, up to 5 s for the exit, then SIGKILL.
void StopPeer(pid_t pid);

// Runs `command` with /bin/sh under `timeout 10` and returns its stdout.
std::string RunShell(const std::string& command);

// `haproxy -db` in TCP mode: 127.0.0.1:`port` to `server` with `server_options`
// ("send-proxy-v2"). Waits until it listens; -1 if it did not.
pid_t StartHaproxy(const std::string& dir, int port, const Address& server,
                   const std::string& server_options);

// nginx in the foreground, one process, with `stream` as its stream block
// (the stream module loaded); waits until it listens on `port`. -1 if not.
pid_t StartNginxStream(const std::string& dir, const std::string& stream, int port);

// A backend on 127.0.0.1 for one client: reads pattern `seed` until the
// client's FIN, checks every byte, and answers with as many bytes of
// pattern seed + 1.
class PatternBackend {
 public:
  explicit PatternBackend(uint64_t seed);
  ~PatternBackend();  // joins: the client must have come (or the listener is shut)
  PatternBackend(const PatternBackend&) = delete;
  PatternBackend& operator=(const PatternBackend&) = delete;

  const Address& address() const { return address_; }
  uint64_t received() const { return received_; }  // valid after the client finished

 private:
  UniqueFd fd_;
  Address address_;
  uint64_t received_ = 0;
  std::thread thread_;
};

// Sends `size` bytes of pattern `seed` to `to`, then FIN, and checks that
// `size` bytes of pattern seed + 1 come back. Returns the client's own
// address (getsockname), as a peer behind zrelayd should see it.
Address PatternClient(const Address& to, uint64_t seed, uint64_t size);

// Reads `fd` (blocking) until EOF, an error or 10 s; what came.
std::string ReadToEof(int fd);

// zrelayd --config `config` (a file written by the test) once it printed
// its start-up lines: the address of listener `name`, and the lines.
struct StartedZrelayd {
  Process process;
  Result<Address> address = Error::Invalid("not started");
  std::string banner;
};
StartedZrelayd StartZrelaydConfig(const std::string& config, const std::string& name);

// SIGTERM, then its exit status (0: a clean drain); closes its stderr.
int StopZrelayd(const Process& process);

}  // namespace zrelay::testing
