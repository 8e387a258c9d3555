// TlsPipeTest: an engine, a TLS server and client context on freshly minted
// certificates, and blocking TLS peers (ssl/TlsStream) for tests that hand
// TLS legs to Engine::Pipe.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <memory>
#include <string>

#include "relay/relay.h"
#include "ssl/tls_context.h"
#include "ssl/tls_stream.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/tls_contexts_fixture.h"

namespace zrelay::testing {

class TlsPipeTest : public TlsContextsTest {
 protected:
  void SetUp() override {
    // Test peers write with write(2) to sockets the relay may have closed:
    // they must see EPIPE, not kill the binary (zrelay's workers block it).
    ASSERT_NE(::signal(SIGPIPE, SIG_IGN), SIG_ERR);
    EngineOptions options;
    options.workers = 2;
    options.mode = RelayMode::kCopy;
    auto engine = testing::StartEngine(options);
    ASSERT_TRUE(engine.ok()) << engine.error().message();
    engine_ = std::move(engine.value());
    TlsContextsTest::SetUp();
  }

  // Writes all of `data` to a blocking TLS stream.
  static bool WriteAll(TlsStream& tls, const std::string& data) {
    for (size_t sent = 0; sent < data.size();) {
      TlsResult r = tls.Write(data.data() + sent, data.size() - sent);
      if (!r.ok()) return false;
      sent += r.bytes;
    }
    return true;
  }

  // Reads exactly `n` bytes from a blocking TLS stream (fewer: it ended).
  static std::string ReadExactly(TlsStream& tls, size_t n) {
    std::string got(n, '\0');
    size_t have = 0;
    while (have < n) {
      TlsResult r = tls.Read(got.data() + have, n - have);
      if (!r.ok()) break;
      have += r.bytes;
    }
    got.resize(have);
    return got;
  }

  // Reads from a blocking TLS stream until it ends; returns how it ended.
  static TlsIo ReadToEnd(TlsStream& tls, std::string& got) {
    char buf[16 << 10];
    for (;;) {
      TlsResult r = tls.Read(buf, sizeof buf);
      if (!r.ok()) return r.status;
      got.append(buf, r.bytes);
    }
  }

  std::unique_ptr<Engine> engine_;
  CloseRecorder closes_;
};

}  // namespace zrelay::testing
