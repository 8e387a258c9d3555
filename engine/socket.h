// Socket helpers: creation, options and non-blocking connect.
//
// All sockets zrelay creates are non-blocking and close-on-exec. Failures
// return an Error naming the address or option involved.
#pragma once

#include "engine/address.h"
#include "engine/clock.h"
#include "engine/result.h"
#include "engine/unique_fd.h"

namespace zrelay {

struct ListenSocketOptions {
  int backlog = 1024;
  bool reuse_port = true;  // SO_REUSEPORT (ignored for unix sockets)
};

// socket + SO_REUSEADDR (+ SO_REUSEPORT) + bind + listen. For unix paths an
// existing stale socket file is NOT removed: that is the caller's decision.
Result<UniqueFd> ListenOn(const Address& address, const ListenSocketOptions& options = {});

// Starts a non-blocking connect. Success means "in progress or done": the
// socket becomes writable when it finishes and SocketError() tells how.
// Immediate failures (ECONNREFUSED on unix sockets, ENETUNREACH, EMFILE) are
// returned as an Error.
Result<UniqueFd> StartConnect(const Address& address);

// The socket StartConnect would connect (non-blocking, close-on-exec), for a
// caller that has the connect itself done elsewhere (an io_uring request).
// Errors name the address and the step ("connect to ...: socket: ...").
Result<UniqueFd> ConnectSocket(const Address& address);

// Pending SO_ERROR of a socket (0 when none), which also clears it.
int SocketError(int fd);

// SO_TYPE of a socket (SOCK_STREAM, SOCK_DGRAM), or -1.
int SocketType(int fd);

// The address a socket is bound to / connected to.
Result<Address> LocalAddress(int fd);
Result<Address> PeerAddress(int fd);

// Options. Each returns an Error naming the option on failure; TCP-only
// options are a no-op success on unix sockets.
Status SetNoDelay(int fd, bool on = true);
Status SetKeepAlive(int fd, bool on, seconds idle = seconds(60), seconds interval = seconds(10),
                    int probes = 6);
Status SetSendBuffer(int fd, int bytes);
Status SetReceiveBuffer(int fd, int bytes);
// SO_LINGER {1, 0}: the next close() sends RST instead of FIN, so an aborted
// pair tells its peer it was reset rather than cleanly finished.
Status SetLingerZero(int fd);

}  // namespace zrelay
