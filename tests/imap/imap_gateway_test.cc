// zrelay-imap as a process between Python's imaplib (imap_client.py) and
// scripted IMAP backends (imap_backend.py): STARTTLS and implicit TLS,
// routing by user name, large FETCH and APPEND byte for byte, pipelining
// behind LOGIN, refusals the client recovers from, many clients at once.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/imap/child_process.h"
#include "tests/support/test_certs.h"

namespace zrelay::testing {
namespace {

constexpr char kAlicePassword[] = "s3\"cr\\et";  // quoted with escapes on the wire
constexpr char kBobPassword[] = "b0b-pw";
// Multiples of 80, the line length of imap_test_data.message.
constexpr size_t kFetchSize = 13108 * 80;   // about 1 MiB
constexpr size_t kAppendSize = 26214 * 80;  // about 2 MiB

class ImapGatewayTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto certs = MakeTestCerts();
    ASSERT_TRUE(certs.ok()) << certs.error().message();
    certs_ = new TestCerts(*certs);
  }
  static void TearDownTestSuite() {
    RemoveTestCerts(*certs_);
    delete certs_;
  }

  void TearDown() override {
    if (gateway_) {
      EXPECT_EQ(gateway_->Stop(), 0) << gateway_->ReadUntil("\n");
    }
  }

  std::string RecordPath(const std::string& backend) const {
    return certs_->dir + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name() +
           "." + backend + ".record";
  }

  // Starts a backend that accepts `user`; returns its address.
  std::string StartBackend(const std::string& name, const std::string& user,
                           const std::string& password, bool tls = false) {
    std::vector<std::string> argv = {"python3",        Runfile("tests/imap/imap_backend.py"),
                                     "--name",         name,
                                     "--user",         user,
                                     "--password",     password,
                                     "--record",       RecordPath(name),
                                     "--message-size", std::to_string(kFetchSize)};
    if (tls) {
      argv.insert(argv.end(), {"--tls-cert", certs_->server.cert, "--tls-key", certs_->server.key});
    }
    auto& backend = backends_.emplace_back(std::make_unique<Child>(argv));
    std::string err = backend->ReadUntil("\n");
    size_t at = err.find("listening on ");
    EXPECT_NE(at, std::string::npos) << "backend " << name << ": " << err;
    return at == std::string::npos ? "" : err.substr(at + 13, err.find('\n', at) - at - 13);
  }

  // alice at backend A, bob at B, carol at a port nobody listens on.
  void StartGatewayWithTwoBackends() {
    std::string a = StartBackend("A", "alice", kAlicePassword);
    std::string b = StartBackend("B", "bob", kBobPassword);
    StartGateway({"--route", "alice=" + a, "--route", "bob=" + b, "--route", "carol=127.0.0.1:1"});
  }

  void StartGateway(const std::vector<std::string>& routing) {
    std::vector<std::string> argv = {Runfile("tools/imap/zrelay-imap"),
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--tls-listen",
                                     "127.0.0.1:0",
                                     "--tls-cert",
                                     certs_->server.cert,
                                     "--tls-key",
                                     certs_->server.key,
                                     "--timeout",
                                     "3s"};
    argv.insert(argv.end(), routing.begin(), routing.end());
    gateway_ = std::make_unique<Child>(argv);
    std::string err = gateway_->ReadUntil(" (TLS)\n");
    size_t at = err.find("listening on ");
    ASSERT_NE(at, std::string::npos) << err;
    size_t plain_end = err.find(" (STARTTLS)", at);
    size_t tls_at = err.find(", ", plain_end) + 2;
    plain_ = err.substr(at + 13, plain_end - at - 13);
    tls_ = err.substr(tls_at, err.find(" (TLS)", tls_at) - tls_at);
  }

  // Runs one scenario of imap_client.py; "" when it passed, else its output.
  std::string Client(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"python3", Runfile("tests/imap/imap_client.py")};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--plain", plain_, "--tls", tls_, "--ca", certs_->ca.cert});
    Finished run = RunToEnd(argv, seconds(50));
    return run.exit == 0 ? "" : "exit " + std::to_string(run.exit) + ": " + run.output;
  }

  // The lines a backend recorded, one per command.
  std::vector<std::string> Record(const std::string& backend) const {
    std::ifstream in(RecordPath(backend));
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  size_t Count(const std::string& backend, const std::string& prefix) const {
    size_t n = 0;
    for (const std::string& line : Record(backend)) n += line.rfind(prefix, 0) == 0;
    return n;
  }

  // Every APPEND the backend got was the message the client sent, byte for byte.
  bool AppendsMatched(const std::string& backend) const {
    for (const std::string& line : Record(backend)) {
      if (line.rfind("APPEND ", 0) == 0 && !line.ends_with(" match")) return false;
    }
    return true;
  }

  static TestCerts* certs_;
  std::vector<std::unique_ptr<Child>> backends_;
  std::unique_ptr<Child> gateway_;  // after backends_: stopped first
  std::string plain_, tls_;
};

TestCerts* ImapGatewayTest::certs_ = nullptr;

std::string AppendLine(size_t size) { return "APPEND " + std::to_string(size) + " "; }

TEST_F(ImapGatewayTest, StarttlsSessionMovesLargeFetchAndAppendByteExact) {
  StartGatewayWithTwoBackends();
  EXPECT_EQ(Client({"session", "--via", "starttls", "--user", "alice", "--password", kAlicePassword,
                    "--fetch-size", std::to_string(kFetchSize), "--append-size",
                    std::to_string(kAppendSize)}),
            "");
  std::vector<std::string> record = Record("A");
  ASSERT_EQ(record.size(), 6u) << ::testing::PrintToString(record);
  EXPECT_EQ(record[0], "LOGIN alice ok");
  EXPECT_EQ(record[1], "SELECT INBOX");
  EXPECT_EQ(record[2], "FETCH " + std::to_string(kFetchSize));
  EXPECT_EQ(record[3].rfind(AppendLine(kAppendSize), 0), 0u) << record[3];
  EXPECT_TRUE(AppendsMatched("A")) << record[3];
  EXPECT_EQ(record[4], "NOOP");
  EXPECT_EQ(record[5], "LOGOUT");
}

TEST_F(ImapGatewayTest, ImplicitTlsSessionMovesLargeFetchAndAppendByteExact) {
  StartGatewayWithTwoBackends();
  EXPECT_EQ(Client({"session", "--via", "tls", "--user", "bob", "--password", kBobPassword,
                    "--fetch-size", std::to_string(kFetchSize), "--append-size",
                    std::to_string(kAppendSize)}),
            "");
  EXPECT_EQ(Count("B", "LOGIN bob ok"), 1u);
  EXPECT_EQ(Count("B", AppendLine(kAppendSize)), 1u);
  EXPECT_TRUE(AppendsMatched("B"));
}

TEST_F(ImapGatewayTest, RoutesEachUserToItsBackend) {
  StartGatewayWithTwoBackends();
  for (const char* via : {"starttls", "tls"}) {
    EXPECT_EQ(Client({"session", "--via", via, "--user", "alice", "--password", kAlicePassword,
                      "--fetch-size", std::to_string(kFetchSize), "--append-size", "8000"}),
              "");
    EXPECT_EQ(Client({"session", "--via", via, "--user", "bob", "--password", kBobPassword,
                      "--fetch-size", std::to_string(kFetchSize), "--append-size", "8000"}),
              "");
  }
  EXPECT_EQ(Count("A", "LOGIN alice ok"), 2u);
  EXPECT_EQ(Count("A", "LOGIN bob"), 0u);
  EXPECT_EQ(Count("B", "LOGIN bob ok"), 2u);
  EXPECT_EQ(Count("B", "LOGIN alice"), 0u);
  EXPECT_EQ(Count("A", "APPEND 8000 "), 2u);
  EXPECT_EQ(Count("B", "APPEND 8000 "), 2u);
  EXPECT_TRUE(AppendsMatched("A"));
  EXPECT_TRUE(AppendsMatched("B"));
}

TEST_F(ImapGatewayTest, CommandsPipelinedBehindLoginAreCarried) {
  StartGatewayWithTwoBackends();
  for (const char* via : {"starttls", "tls"}) {
    EXPECT_EQ(Client({"pipelined", "--via", via, "--user", "alice", "--password", kAlicePassword}),
              "");
  }
  const std::vector<std::string> one = {"LOGIN alice ok", "NOOP", "SELECT INBOX", "LOGOUT"};
  std::vector<std::string> both = one;
  both.insert(both.end(), one.begin(), one.end());
  EXPECT_EQ(Record("A"), both);
}

// Literals from the client; a password a quoted string cannot hold (8-bit)
// goes on to the backend as a literal too, after its "+".
TEST_F(ImapGatewayTest, LoginWithLiteralsIsReplayedToTheBackend) {
  const std::string eight_bit = "p\xc3\xa4ssw\xc3\xb6rd";
  std::string a = StartBackend("A", "alice", kAlicePassword);
  std::string e = StartBackend("E", "erin", eight_bit);
  StartGateway({"--route", "alice=" + a, "--route", "erin=" + e});
  EXPECT_EQ(
      Client({"literal_login", "--via", "tls", "--user", "alice", "--password", kAlicePassword}),
      "");
  EXPECT_EQ(
      Client({"literal_login", "--via", "starttls", "--user", "erin", "--password", eight_bit}),
      "");
  EXPECT_EQ(Record("A"), (std::vector<std::string>{"LOGIN alice ok", "NOOP"}));
  EXPECT_EQ(Record("E"), (std::vector<std::string>{"LOGIN erin ok", "NOOP"}));
}

TEST_F(ImapGatewayTest, UnknownUserGetsNoAndMayTryAgain) {
  StartGatewayWithTwoBackends();
  EXPECT_EQ(Client({"refused_then_ok", "--user", "mallory", "--password", "x", "--then-user",
                    "alice", "--then-password", kAlicePassword}),
            "");
  EXPECT_EQ(Record("A"), (std::vector<std::string>{"LOGIN alice ok", "SELECT INBOX", "LOGOUT"}));
}

TEST_F(ImapGatewayTest, BackendDownGetsNoAndMayTryAgain) {
  StartGatewayWithTwoBackends();
  EXPECT_EQ(Client({"refused_then_ok", "--via", "tls", "--user", "carol", "--password", "x",
                    "--then-user", "alice", "--then-password", kAlicePassword}),
            "");
  EXPECT_EQ(Count("A", "LOGIN alice ok"), 1u);
  EXPECT_NE(gateway_->ReadUntil("127.0.0.1:1").find("backend 127.0.0.1:1"), std::string::npos);
}

TEST_F(ImapGatewayTest, LoginRefusedByTheBackendGetsItsNoAndMayTryAgain) {
  StartGatewayWithTwoBackends();
  EXPECT_EQ(Client({"refused_then_ok", "--user", "alice", "--password", "wrong", "--then-user",
                    "alice", "--then-password", kAlicePassword}),
            "");
  EXPECT_EQ(Record("A"), (std::vector<std::string>{"LOGIN alice refused", "LOGIN alice ok",
                                                   "SELECT INBOX", "LOGOUT"}));
}

TEST_F(ImapGatewayTest, LoginBeforeStarttlsIsRefused) {
  StartGatewayWithTwoBackends();
  EXPECT_EQ(Client({"before_starttls", "--user", "alice", "--password", "al1ce"}), "");
  EXPECT_TRUE(Record("A").empty());
}

TEST_F(ImapGatewayTest, PlaintextBehindStarttlsIsNeverRunAsACommand) {
  StartGatewayWithTwoBackends();
  EXPECT_EQ(Client({"starttls_injection"}), "");
}

TEST_F(ImapGatewayTest, SilentClientIsHungUpOnAfterTheTimeout) {
  StartGatewayWithTwoBackends();
  EXPECT_EQ(Client({"idle"}), "");
}

TEST_F(ImapGatewayTest, FiftyClientsAtOnce) {
  StartGatewayWithTwoBackends();
  constexpr size_t kSize = 819 * 80;  // 64 KiB
  EXPECT_EQ(
      Client({"many", "--clients", "50", "--parallel", "50", "--user", "alice", "--password",
              kAlicePassword, "--then-user", "bob", "--then-password", kBobPassword, "--fetch-size",
              std::to_string(kFetchSize), "--append-size", std::to_string(kSize)}),
      "");
  EXPECT_EQ(Count("A", "LOGIN alice ok"), 25u);
  EXPECT_EQ(Count("B", "LOGIN bob ok"), 25u);
  EXPECT_EQ(Count("A", AppendLine(kSize)), 25u);
  EXPECT_EQ(Count("B", AppendLine(kSize)), 25u);
  EXPECT_TRUE(AppendsMatched("A"));
  EXPECT_TRUE(AppendsMatched("B"));
}

TEST_F(ImapGatewayTest, DefaultBackendOverTlsVerifiedWithTheGivenCa) {
  std::string c = StartBackend("C", "dave", "d4ve", /*tls=*/true);
  StartGateway({"--default", c, "--backend-tls", "--backend-ca", certs_->ca.cert});
  EXPECT_EQ(Client({"session", "--user", "dave", "--password", "d4ve", "--fetch-size",
                    std::to_string(kFetchSize), "--append-size", std::to_string(kAppendSize)}),
            "");
  EXPECT_EQ(Count("C", "LOGIN dave ok"), 1u);
  EXPECT_EQ(Count("C", AppendLine(kAppendSize)), 1u);
  EXPECT_TRUE(AppendsMatched("C"));
}

TEST_F(ImapGatewayTest, BackendWithACertificateFromAnotherCaIsRefused) {
  std::string c = StartBackend("C", "dave", "d4ve", /*tls=*/true);
  StartGateway({"--default", c, "--backend-tls", "--backend-ca", certs_->other_ca.cert});
  EXPECT_NE(Client({"session", "--user", "dave", "--password", "d4ve"}), "");
  EXPECT_EQ(Count("C", "LOGIN"), 0u);
}

// Startup errors name what is wrong; usage errors exit 2, a bind 1.
TEST(ImapGatewayStartupTest, ErrorsNameTheThingAtFault) {
  auto certs = MakeTestCerts();
  ASSERT_TRUE(certs.ok()) << certs.error().message();
  const std::string binary = Runfile("tools/imap/zrelay-imap");
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), binary);
    return RunToEnd(args, seconds(10));
  };
  const std::vector<std::string> tls = {"--tls-cert", certs->server.cert, "--tls-key",
                                        certs->server.key};
  auto with_tls = [&](std::vector<std::string> args) {
    args.insert(args.end(), tls.begin(), tls.end());
    return run(args);
  };

  Finished missing_cert = run({"--listen", "127.0.0.1:0", "--default", "127.0.0.1:9", "--tls-cert",
                               certs->dir + "/nope.pem", "--tls-key", certs->server.key});
  EXPECT_EQ(missing_cert.exit, 2);
  EXPECT_NE(missing_cert.output.find("nope.pem"), std::string::npos) << missing_cert.output;

  Finished bad_route = with_tls({"--listen", "127.0.0.1:0", "--route", "alice"});
  EXPECT_EQ(bad_route.exit, 2);
  EXPECT_NE(bad_route.output.find("'alice'"), std::string::npos) << bad_route.output;

  Finished bad_backend = with_tls({"--listen", "127.0.0.1:0", "--route", "a=1.2.3:x"});
  EXPECT_EQ(bad_backend.exit, 2);
  EXPECT_NE(bad_backend.output.find("1.2.3:x"), std::string::npos) << bad_backend.output;

  Finished bad_listen = with_tls({"--listen", "127.0.0.1:http", "--default", "127.0.0.1:9"});
  EXPECT_EQ(bad_listen.exit, 2);
  EXPECT_NE(bad_listen.output.find("127.0.0.1:http"), std::string::npos) << bad_listen.output;

  Finished twice = with_tls(
      {"--listen", "127.0.0.1:0", "--route", "a=127.0.0.1:9", "--route", "a=127.0.0.1:10"});
  EXPECT_EQ(twice.exit, 2);
  EXPECT_NE(twice.output.find("'a' routed twice"), std::string::npos) << twice.output;

  Finished ca_alone = with_tls(
      {"--listen", "127.0.0.1:0", "--default", "127.0.0.1:9", "--backend-ca", certs->ca.cert});
  EXPECT_EQ(ca_alone.exit, 2);
  EXPECT_NE(ca_alone.output.find("--backend-tls"), std::string::npos) << ca_alone.output;

  Finished no_cert = run({"--listen", "127.0.0.1:0", "--default", "127.0.0.1:9"});
  EXPECT_EQ(no_cert.exit, 2);
  EXPECT_NE(no_cert.output.find("--tls-cert"), std::string::npos) << no_cert.output;

  Finished help = run({"--help"});
  EXPECT_EQ(help.exit, 0);
  EXPECT_NE(help.output.find("--route"), std::string::npos) << help.output;

  Finished no_backend = with_tls({"--listen", "127.0.0.1:0"});
  EXPECT_EQ(no_backend.exit, 2);
  EXPECT_NE(no_backend.output.find("--route or --default"), std::string::npos) << no_backend.output;

  Child holder({"python3", "-c",
                "import socket,sys,time\n"
                "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\n"
                "print('port %d' % s.getsockname()[1], file=sys.stderr, flush=True)\n"
                "time.sleep(30)"});
  std::string said = holder.ReadUntil("\n");
  ASSERT_NE(said.find("port "), std::string::npos) << said;
  std::string busy = "127.0.0.1:" + said.substr(said.find("port ") + 5, said.find('\n') - 5);
  Finished in_use = with_tls({"--listen", busy, "--default", "127.0.0.1:9"});
  EXPECT_EQ(in_use.exit, 1);
  EXPECT_NE(in_use.output.find(busy), std::string::npos) << in_use.output;
  RemoveTestCerts(*certs);
}

}  // namespace
}  // namespace zrelay::testing
