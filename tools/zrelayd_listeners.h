// zrelayd's settings as the engine's options: EngineOptions from the global
// keys and, per listener, a ListenOptions with the TLS contexts it points at.
//
//   FileConfig config = ...;  // LoadConfigFile(path), or FileConfigFromFlags(flags)
//   EngineOptions engine = EngineOptionsFor(config);
//   auto listeners = SetUpListeners(config, engine, path);  // opens every TLS file
//   for (const ListenerSetup& l : *listeners) engine_->Listen(l.options);
//
// The command line is a file with one listener, so both forms start through
// here, and --check builds exactly what a start would.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/result.h"
#include "relay/relay.h"
#include "ssl/tls_context.h"
#include "tools/config/config.h"
#include "tools/log/log_sink.h"
#include "tools/zrelayd_flags.h"

namespace zrelay {

struct ListenerSetup {
  ListenOptions options;   // its tls pointers are the contexts below
  TlsContext client_tls;   // empty: plain from clients
  TlsContext backend_tls;  // empty: plain to the backends
};

// The command line as a file with one unnamed listener and one backend (the
// --backend address as resolved; a name typed there is the backend's SNI).
FileConfig FileConfigFromFlags(const ZrelaydConfig& flags);

// The global keys. The engine's idle and handshake timeouts are the first
// TCP listener's, so a single listener (the command-line form) overrides
// nothing.
EngineOptions EngineOptionsFor(const FileConfig& config);

// The sockets of `fds` a listener of `protocol` may adopt
// (ListenOptions::inherited_sockets): datagram sockets for UDP, stream
// sockets (TCP or unix) for TCP. A TCP and a UDP listener may share an
// address, and the engine picks handed-over sockets by their address.
std::vector<int> SocketsFor(Protocol protocol, const std::vector<int>& fds);

// Builds every listener's TLS contexts (opening each certificate, key and CA
// file) and its ListenOptions; a listener's timeouts override `engine`'s only
// where they differ. With `access_log` each closed pair is one line there
// (tools/log/access_log.h); every listener's events go to Log(). An error
// names `file`, and the line and key of the TLS file at fault:
//   zrelayd.toml:41: listener[1].tls_cert[1]: certificate file '/etc/zrelay/api.pem': No such
//   file or directory
// (`file` empty, for the command line: "TLS: ..." or "backend TLS: ...").
Result<std::vector<ListenerSetup>> SetUpListeners(const FileConfig& config,
                                                  const EngineOptions& engine,
                                                  std::string_view file,
                                                  std::shared_ptr<const LogSink> access_log = {});

}  // namespace zrelay
