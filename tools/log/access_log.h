// The access log: one line per closed pair, key=value, from the worker
// thread that closed it.
//
//   listener=web client=127.0.0.1:51234 backend=10.0.0.5:9000 bytes_up=123 bytes_down=456
//   duration_ms=12 cause=done tls=TLSv1.3 sni=a.example detail="connect 10.0.0.5:9000: timed out"
//
// (one line; a file's lines start with a timestamp, stderr's with
// "zrelayd: ", as tools/log/log_sink.h says). bytes_up went client ->
// backend, bytes_down backend -> client; cause is CloseCauseName(). Always
// there: client and backend ("-" when unknown: a pair that never got a
// backend), the byte counts, duration_ms and cause. Only when known:
// listener (the command line's listener has no name), tls and sni (a TLS
// client that finished its handshake), and detail (why it closed, other
// than done). A value with a space, '=', '"', a control or non-ASCII byte
// is quoted, with '"' and '\' escaped by a '\' and the other bytes as \n,
// \r, \t or \xHH; detail is always quoted. The SNI is the client's to
// choose, so it must never break a line in two or forge a key.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "relay/relay.h"
#include "tools/log/log_sink.h"

namespace zrelay {

// The line for one closed pair of `listener` (empty: no listener= key),
// without timestamp or newline.
std::string AccessLine(std::string_view listener, const PairStats& stats);

// An on_close that writes AccessLine() to `sink`: one line, one write(2).
OnClose AccessLogger(std::shared_ptr<const LogSink> sink, std::string listener);

}  // namespace zrelay
