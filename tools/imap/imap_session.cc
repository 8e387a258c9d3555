#include "tools/imap/imap_session.h"

#include <cstdio>
#include <memory>
#include <utility>
#include <vector>

#include "tools/imap/imap_args.h"

namespace zrelay::imap {

namespace {

constexpr size_t kMaxLoginLiteral = 1024;  // user names and passwords are short
constexpr int kMaxRefusals = 10;           // refused commands before the gateway hangs up
constexpr int kMaxUntagged = 64;           // backend lines passed on before LOGIN's answer
constexpr Duration kConnectTimeout = seconds(10);

// One line per relayed session as it ends, for the operator. The user name
// is the client's own (a literal may hold any byte): control bytes are
// shown as '?', so a name cannot forge or split log lines.
void LogSessionEnd(std::string user, const std::string& backend, const PairStats& stats) {
  for (char& c : user) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  std::fprintf(stderr, "zrelay-imap: session of %s at %s ended: %s, %llu bytes up, %llu down%s%s\n",
               user.c_str(), backend.c_str(), CloseCauseName(stats.cause),
               static_cast<unsigned long long>(stats.a_to_b),
               static_cast<unsigned long long>(stats.b_to_a), stats.detail.empty() ? "" : ": ",
               stats.detail.c_str());
}

// The session owns both connections, and every pending callback owns the
// session: it lives as long as something is pending, and dropping the last
// callback closes what is left.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(const GatewayConfig& config, ConnectionPtr client, bool tls)
      : config_(config), client_(std::move(client)), tls_(tls) {}

  void Start() {
    client_->SetTimeout(config_.timeout);
    Reply("* OK [CAPABILITY " + Capabilities() + "] zrelay-imap ready");
    NextCommand();
  }

 private:
  // LOGINDISABLED until TLS: passwords never cross the network in the clear.
  std::string Capabilities() const {
    return tls_ ? "IMAP4rev1 LITERAL+" : "IMAP4rev1 STARTTLS LOGINDISABLED";
  }
  void Reply(const std::string& line) { client_->Write(line + "\r\n"); }
  // Says the last words, then lets the session end once they are out.
  void Hangup(const std::string& line) {
    client_->Write(line + "\r\n", [self = shared_from_this()](Status) {});
  }
  void Refuse(const std::string& line) {
    if (++refusals_ > kMaxRefusals) return Hangup(line + "\r\n* BYE too many refused commands");
    Reply(line);
    NextCommand();
  }

  void NextCommand() {
    client_->ReadLine([self = shared_from_this()](Result<std::string> line) {
      if (line) self->OnCommand(*line);
    });
  }

  void OnCommand(const std::string& line) {
    auto command = ParseCommand(line);
    if (!command) return Refuse("* BAD " + command.error().message());
    tag_ = command->tag;
    const std::string& name = command->name;
    if (name == "CAPABILITY") {
      Reply("* CAPABILITY " + Capabilities());
      Reply(tag_ + " OK CAPABILITY completed");
    } else if (name == "NOOP") {
      Reply(tag_ + " OK NOOP completed");
    } else if (name == "LOGOUT") {
      return Hangup("* BYE zrelay-imap logging out\r\n" + tag_ + " OK LOGOUT completed");
    } else if (name == "STARTTLS" && !tls_) {
      return StartTls();
    } else if (name == "LOGIN" && tls_) {
      args_.clear();
      return ReadLoginArgs(command->rest);
    } else if (name == "LOGIN") {
      // A literal's bytes could not be told from the next command: hang up.
      if (command->rest.ends_with("}")) return Hangup(tag_ + " BAD LOGIN needs STARTTLS first");
      return Refuse(tag_ + " NO [PRIVACYREQUIRED] LOGIN needs STARTTLS first");
    } else {
      return Refuse(tag_ + " BAD " + name + " is not available before LOGIN");
    }
    NextCommand();
  }

  void StartTls() {
    Reply(tag_ + " OK begin TLS negotiation now");
    client_->StartTls(config_.server_tls, TlsRole::kServer, [self = shared_from_this()](Status s) {
      if (!s) return;
      self->tls_ = true;
      self->NextCommand();
    });
  }

  // `rest`: the LOGIN line after its name, or the line after a literal.
  void ReadLoginArgs(const std::string& rest) {
    auto parsed = ParseArgs(rest, kMaxLoginLiteral);
    if (!parsed) {
      std::string answer = tag_ + " BAD LOGIN: " + parsed.error().message();
      return rest.ends_with("}") ? Hangup(answer) : Refuse(answer);
    }
    for (std::string& arg : parsed->args) args_.push_back(std::move(arg));
    if (!parsed->literal) return Login();
    if (parsed->literal->synchronizing) Reply("+ OK");
    auto literal = [self = shared_from_this()](Result<std::string> bytes) {
      if (!bytes) return;
      self->args_.push_back(std::move(*bytes));
      self->client_->ReadLine([self](Result<std::string> line) {
        if (line) self->ReadLoginArgs(*line);
      });
    };
    client_->ReadExactly(parsed->literal->size, std::move(literal));
  }

  void Login() {
    if (args_.size() != 2) return Refuse(tag_ + " BAD LOGIN takes a user name and a password");
    const Backend* backend = Route(args_[0]);
    if (backend == nullptr) return Refuse(tag_ + " NO [AUTHENTICATIONFAILED] unknown user");
    backend_address_ = backend->address.ToString();
    auto connected = [self = shared_from_this(), backend](Result<ConnectionPtr> server) {
      self->OnConnected(std::move(server), *backend);
    };
    client_->Connect(backend->address, kConnectTimeout, std::move(connected));
  }

  void OnConnected(Result<ConnectionPtr> server, const Backend& backend) {
    if (!server) return BackendFailed(server.error().message());
    backend_ = std::move(*server);
    backend_->SetTimeout(config_.timeout);
    if (config_.backend_tls == nullptr) return ReadGreeting();
    auto handshaken = [self = shared_from_this()](Status s) {
      if (!s) return self->BackendFailed(s.error().message());
      self->ReadGreeting();
    };
    backend_->StartTls(config_.backend_tls, TlsRole::kClient, std::move(handshaken), backend.host);
  }

  const Backend* Route(const std::string& user) const {
    auto route = config_.routes.find(user);
    if (route != config_.routes.end()) return &route->second;
    return config_.default_backend ? &*config_.default_backend : nullptr;
  }

  void BackendFailed(const std::string& why) {
    std::fprintf(stderr, "zrelay-imap: backend %s: %s\n", backend_address_.c_str(), why.c_str());
    backend_.reset();
    Refuse(tag_ + " NO [UNAVAILABLE] backend unavailable");
  }

  void ReadGreeting() {
    backend_->ReadLine([self = shared_from_this()](Result<std::string> line) {
      if (!line) return self->BackendFailed(line.error().message());
      if (!line->starts_with("* OK")) return self->BackendFailed("greeting '" + *line + "'");
      self->SendLogin(FormatLogin(self->tag_, self->args_[0], self->args_[1]), 0);
    });
  }

  // Writes parts[next]; each but the last ends with a literal the backend
  // must accept ("+") before its bytes go.
  void SendLogin(std::vector<std::string> parts, size_t next) {
    backend_->Write(parts[next]);
    bool last = next + 1 == parts.size();
    backend_->ReadLine([self = shared_from_this(), parts = std::move(parts), next,
                        last](Result<std::string> line) {
      if (!line) return self->BackendFailed(line.error().message());
      if (!last && line->starts_with("+")) return self->SendLogin(parts, next + 1);
      self->OnLoginAnswer(*line, 0);
    });
  }

  void OnLoginAnswer(const std::string& line, int untagged) {
    if (line.starts_with("* ") && untagged < kMaxUntagged) {
      Reply(line);  // e.g. the CAPABILITY a backend sends with its answer
      backend_->ReadLine([self = shared_from_this(), untagged](Result<std::string> next) {
        if (!next) return self->BackendFailed(next.error().message());
        self->OnLoginAnswer(*next, untagged + 1);
      });
      return;
    }
    if (!line.starts_with(tag_ + " ")) return BackendFailed("answered '" + line + "'");
    if (!line.starts_with(tag_ + " OK")) {
      backend_.reset();  // the client may try again, on a fresh backend connection
      return Refuse(line);
    }
    // Both legs go to the engine once the answer is out; what the client
    // sent behind its LOGIN is still buffered, and Pipe carries it.
    client_->Write(line + "\r\n", [self = shared_from_this()](Status written) {
      if (!written) return;
      Connection::Pipe(std::move(self->client_), std::move(self->backend_),
                       [user = self->args_[0], backend = self->backend_address_](
                           const PairStats& stats) { LogSessionEnd(user, backend, stats); });
    });
  }

  const GatewayConfig& config_;
  ConnectionPtr client_;
  ConnectionPtr backend_;
  bool tls_;
  int refusals_ = 0;
  std::string tag_;
  std::vector<std::string> args_;  // LOGIN's user name and password, once read
  std::string backend_address_;
};

}  // namespace

void ServeClient(const GatewayConfig& config, ConnectionPtr client, bool tls) {
  std::make_shared<Session>(config, std::move(client), tls)->Start();
}

}  // namespace zrelay::imap
