// zrelayd with a configuration file, as a user runs it: --check on good and
// bad files (the real process, real certificate files), --config serving
// every listener of a file.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/socket.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"
#include "tests/support/test_certs.h"
#include "tests/tools/zrelayd_process_util.h"

namespace zrelay {
namespace {

using testing::Finished;
using testing::ListenerAddress;
using testing::Process;
using testing::ReadUntil;
using testing::RunZrelayd;
using testing::WaitExit;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

// Replaces every `from` in `text` with `to`.
std::string ReplaceAll(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

class ZrelaydCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    auto certs = testing::MakeTestCerts();
    ASSERT_TRUE(certs.ok()) << certs.error().message();
    certs_ = certs.value();
  }
  void TearDown() override {
    for (const std::string& file : files_) ::unlink(file.c_str());
    if (!certs_.dir.empty()) testing::RemoveTestCerts(certs_);
  }
  // A file in the certificates' directory, removed after the test.
  std::string Write(const std::string& name, const std::string& text) {
    files_.push_back(certs_.dir + "/" + name);
    return WriteFile(files_.back(), text);
  }

  testing::TestCerts certs_;
  std::vector<std::string> files_;
};

// The shipped example, with its /etc/zrelay/ files made here: every TLS file
// it names is opened, nothing is bound or resolved.
TEST_F(ZrelaydCheck, ExampleFileIsOk) {
  std::string example = ReadFile("examples/zrelayd.toml");
  ASSERT_NE(example.find("/etc/zrelay/"), std::string::npos);
  for (const char* name : {"example.com", "api.example.com"}) {
    auto cert =
        testing::IssueCert(certs_.dir, name, {.common_name = name, .dns_names = {name}}, certs_.ca);
    ASSERT_TRUE(cert.ok()) << cert.error().message();
    files_.push_back(cert->cert);
    files_.push_back(cert->key);
  }
  Write("internal-ca.pem", ReadFile(certs_.ca.cert));
  std::string path = Write("zrelayd.toml", ReplaceAll(example, "/etc/zrelay/", certs_.dir + "/"));

  Finished run = RunZrelayd({"--check", path});
  EXPECT_EQ(run.exit, 0) << run.err;
  EXPECT_EQ(run.out, path + ": OK, 2 listeners, 6 backends\n");
  EXPECT_EQ(run.err, "");
}

// The first listener of a small file, with `keys` on line 5.
std::string OneListener(const std::string& keys) {
  return "workers = 1\n\n[[listener]]\nname = \"web\"\n" + keys +
         "\nlisten = \"127.0.0.1:8080\"\n\n[[listener.backend]]\naddress = \"127.0.0.1:9000\"\n\n"
         "[[listener.backend]]\naddress = \"127.0.0.1:9001\"\n";
}

TEST_F(ZrelaydCheck, UnknownKeyNamesFileLineAndKey) {
  std::string path = Write("typo.toml", OneListener("balanse = \"maglev\""));
  Finished run = RunZrelayd({"--check", path});
  EXPECT_EQ(run.exit, 2);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err, "zrelayd: " + path +
                         ":5: listener[0].balanse: unknown key (did you mean \"balance\"?)\n");
}

TEST_F(ZrelaydCheck, BadValueNamesFileLineAndKey) {
  std::string text = OneListener("retries = 1") + "weight = \"two\"\n";
  std::string path = Write("weight.toml", text);
  Finished run = RunZrelayd({"--check", path});
  EXPECT_EQ(run.exit, 2);
  EXPECT_EQ(run.out, "");
  EXPECT_NE(run.err.find(path + ":13: listener[0].backend[1].weight: expected an integer 1..256"),
            std::string::npos)
      << run.err;
}

// Parsing opens no file: a certificate that is missing, or a key that is not
// its certificate's, is found by building the contexts, and still named by
// its line and key.
TEST_F(ZrelaydCheck, MissingCertificateNamesTheKeyAndTheFile) {
  const std::string missing = certs_.dir + "/missing.pem";
  std::string path =
      Write("missing.toml", OneListener("tls_cert = [\"" + certs_.server.cert + "\",\n  \"" +
                                        missing + "\"]\ntls_key = [\"" + certs_.server.key +
                                        "\", \"" + certs_.server.key + "\"]"));
  Finished run = RunZrelayd({"--check", path});
  EXPECT_EQ(run.exit, 2);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err, "zrelayd: " + path + ":6: listener[0].tls_cert[1]: certificate file '" +
                         missing + "': No such file or directory\n");
}

TEST_F(ZrelaydCheck, KeyOfAnotherCertificateNamesTheKey) {
  std::string path =
      Write("mismatch.toml", OneListener("tls_cert = \"" + certs_.server.cert + "\"\ntls_key = \"" +
                                         certs_.second.key + "\""));
  Finished run = RunZrelayd({"--check", path});
  EXPECT_EQ(run.exit, 2);
  EXPECT_NE(run.err.find(path + ":6: listener[0].tls_key: key '" + certs_.second.key +
                         "' does not match certificate"),
            std::string::npos)
      << run.err;
}

TEST_F(ZrelaydCheck, MissingBackendCaNamesTheKey) {
  const std::string missing = certs_.dir + "/no-ca.pem";
  std::string path =
      Write("ca.toml", OneListener("backend_tls = true\nbackend_ca = \"" + missing + "\""));
  Finished run = RunZrelayd({"--check", path});
  EXPECT_EQ(run.exit, 2);
  EXPECT_NE(run.err.find(path + ":6: listener[0].backend_ca: "), std::string::npos) << run.err;
  EXPECT_NE(run.err.find(missing), std::string::npos) << run.err;
}

// A DNS front: TCP and UDP on one address are two listeners, and --check
// counts the UDP one.
TEST_F(ZrelaydCheck, UdpListenerBesideTcpOnTheSameAddress) {
  std::string path =
      Write("dns.toml",
            "[[listener]]\nname = \"dns-tcp\"\nlisten = \"127.0.0.1:5300\"\n"
            "[[listener.backend]]\naddress = \"127.0.0.1:53\"\n\n"
            "[[listener]]\nname = \"dns\"\nprotocol = \"udp\"\nlisten = \"127.0.0.1:5300\"\n"
            "udp_receive_buffer = \"4M\"\n"
            "[[listener.backend]]\naddress = \"127.0.0.1:53\"\n"
            "[[listener.backend]]\naddress = \"localhost:5353\"\n");
  Finished run = RunZrelayd({"--check", path});
  EXPECT_EQ(run.exit, 0) << run.err;
  EXPECT_EQ(run.out, path + ": OK, 2 listeners, 3 backends, UDP on 1 listener\n");
  EXPECT_EQ(run.err, "");
}

// A key about streams on a UDP listener: exit 2, its line and key, even
// when its file exists and would load.
TEST_F(ZrelaydCheck, UdpListenerRefusesStreamKeysByLine) {
  std::string path =
      Write("udp-tls.toml", OneListener("protocol = \"udp\"\ntls_cert = \"" + certs_.server.cert +
                                        "\"\ntls_key = \"" + certs_.server.key + "\""));
  Finished run = RunZrelayd({"--check", path});
  EXPECT_EQ(run.exit, 2);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err, "zrelayd: " + path +
                         ":6: listener[0].tls_cert: not with protocol = \"udp\": a UDP listener "
                         "relays datagrams as they come (no TLS, no DTLS)\n");
}

TEST_F(ZrelaydCheck, MissingFileIsNamed) {
  Finished run = RunZrelayd({"--check", certs_.dir + "/absent.toml"});
  EXPECT_EQ(run.exit, 2);
  EXPECT_EQ(run.err,
            "zrelayd: config file '" + certs_.dir + "/absent.toml': No such file or directory\n");
}

TEST(ZrelaydConfig, ConfigWithListenOrBackendIsAUsageError) {
  Finished listen = RunZrelayd({"--config", "zrelayd.toml", "--listen", "127.0.0.1:0"});
  EXPECT_EQ(listen.exit, 2);
  EXPECT_NE(listen.err.find("--listen cannot be combined with --config"), std::string::npos)
      << listen.err;
  Finished backend = RunZrelayd({"--backend", "127.0.0.1:1", "--config", "zrelayd.toml"});
  EXPECT_EQ(backend.exit, 2);
  EXPECT_NE(backend.err.find("--backend cannot be combined with --config"), std::string::npos)
      << backend.err;
}

// One client: `size` pattern bytes up and the backend's answer down, checked
// byte for byte against pattern `down_seed`.
testing::Received Exchange(const Address& front, uint64_t up_seed, uint64_t down_seed,
                           uint64_t size) {
  auto client = testing::BlockingConnect(front);
  if (!client.ok()) return {.bytes = 0, .first_mismatch = -1, .error = ECONNREFUSED};
  std::thread sender([&] { testing::SendPattern(client->get(), up_seed, size); });
  testing::Received back = testing::ReceivePattern(client->get(), down_seed);
  sender.join();
  return back;
}

// Two listeners from one file, each with its own backend: a plain one, and
// one originating TLS to `openssl s_server` verified against the IP it is
// configured by. Both relay, also after a SIGHUP that reloads the same
// file; SIGTERM drains.
TEST(ZrelaydConfig, ServesEveryListenerOfTheFile) {
  auto certs = testing::MakeTestCerts();
  ASSERT_TRUE(certs.ok()) << certs.error().message();
  auto plain = ListenOn(testing::Loopback(AF_INET));
  ASSERT_TRUE(plain.ok());
  testing::SetBlocking(plain->get(), true);
  int tls_port = testing::FreePort();
  pid_t s_server = testing::StartOpensslServer(
      tls_port, "-cert " + certs->server.cert + " -key " + certs->server.key);
  ASSERT_GT(s_server, 0);

  std::string path = WriteFile(
      certs->dir + "/two.toml",
      "workers = 2\ndrain_grace = \"200ms\"\nlog_closes = true\n\n"
      "[[listener]]\nname = \"plain\"\nlisten = \"127.0.0.1:0\"\n"
      "[[listener.backend]]\naddress = \"" +
          LocalAddress(plain->get())->ToString() +
          "\"\n\n"
          "[[listener]]\nname = \"to-tls\"\nlisten = \"127.0.0.1:0\"\nbackend_tls = true\n"
          "backend_ca = \"" +
          certs->ca.cert +
          "\"\n[[listener.backend]]\naddress = \"127.0.0.1:" + std::to_string(tls_port) + "\"\n");
  Process p = testing::SpawnZrelayd({"--config", path});
  std::string banner = ReadUntil(p.err_fd, "workers\n");
  auto plain_front = ListenerAddress(banner, "plain");
  auto tls_front = ListenerAddress(banner, "to-tls");
  ASSERT_TRUE(plain_front.ok()) << plain_front.error().message();
  ASSERT_TRUE(tls_front.ok()) << tls_front.error().message();
  EXPECT_NE(banner.find("1 backend, round-robin\n"), std::string::npos) << banner;
  EXPECT_NE(banner.find("2 listeners, mode splice, 2 workers\n"), std::string::npos) << banner;

  std::thread server([&] {
    int c = ::accept(plain->get(), nullptr, nullptr);
    testing::Received r = testing::ReceivePattern(c, 1);
    testing::SendPattern(c, 2, r.bytes);
    ::close(c);
  });
  testing::Received back = Exchange(plain_front.value(), 1, 2, 1 << 20);
  server.join();
  EXPECT_EQ(back.bytes, 1u << 20);
  EXPECT_EQ(back.first_mismatch, -1);

  // The same file again: the plain listener is left alone, the TLS one is
  // reconfigured (its files may have new contents), and both serve on.
  ::kill(p.pid, SIGHUP);
  std::string log = ReadUntil(p.err_fd, "reload done\n");
  const std::string reload = log.substr(std::min(log.find("SIGHUP:"), log.size()));
  EXPECT_NE(reload.find("listener to-tls: reconfigured"), std::string::npos) << log;
  EXPECT_EQ(reload.find("listener plain: reconfigured"), std::string::npos) << log;

  // s_server -rev answers each line reversed: through a verified TLS leg.
  auto client = testing::BlockingConnect(tls_front.value());
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(testing::WriteAll(client->get(), "zrelay\n"));
  std::string got;
  char buf[256];
  while (got.find('\n') == std::string::npos) {
    ssize_t n = ::recv(client->get(), buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got, "yalerz\n");
  client->Reset();

  ::kill(p.pid, SIGTERM);
  log += ReadUntil(p.err_fd, "auto splice switches");
  EXPECT_EQ(WaitExit(p.pid), 0);
  EXPECT_NE(log.find("zrelayd: listener=plain client="), std::string::npos) << log;
  EXPECT_NE(log.find("zrelayd: listener=to-tls client="), std::string::npos) << log;
  EXPECT_NE(log.find("accepted 2,"), std::string::npos) << log;
  ::kill(s_server, SIGTERM);
  ::waitpid(s_server, nullptr, 0);
  ::close(p.err_fd);
  ::unlink(path.c_str());
  testing::RemoveTestCerts(certs.value());
}

}  // namespace
}  // namespace zrelay
