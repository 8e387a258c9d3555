#include "relay/resolver.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <utility>

namespace zrelay {
namespace {

std::string Join(const std::vector<Address>& addresses) {
  std::string out;
  for (const Address& a : addresses) {
    if (!out.empty()) out += ", ";
    out += a.ToString();
  }
  return out.empty() ? "nothing" : out;
}

bool SameAddresses(const std::vector<Address>& a, const std::vector<Address>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].ToString() != b[i].ToString()) return false;
  }
  return true;
}

std::string HostPort(const BackendOptions& b) { return b.host + ":" + std::to_string(b.port); }

}  // namespace

Result<std::vector<Address>> ResolveHost(const std::string& host, int port) {
  struct addrinfo hints {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  struct addrinfo* list = nullptr;
  const std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
  if (rc != 0) {
    return Error::Invalid("cannot resolve '" + host + "': " + ::gai_strerror(rc));
  }
  std::vector<Address> out;
  for (struct addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    Address a(ai->ai_addr, static_cast<socklen_t>(ai->ai_addrlen));
    const std::string text = a.ToString();
    if (std::none_of(out.begin(), out.end(),
                     [&](const Address& o) { return o.ToString() == text; })) {
      out.push_back(a);
    }
  }
  ::freeaddrinfo(list);
  if (out.empty()) return Error::Invalid("'" + host + "' has no address");
  return out;
}

Resolver::Resolver(std::vector<BackendOptions> backends, ResolveFunction resolve)
    : backends_(std::move(backends)),
      resolve_(resolve ? std::move(resolve) : ResolveFunction(ResolveHost)),
      addresses_(backends_.size()) {}

Resolver::~Resolver() { Stop(); }

void Resolver::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Resolver::has_hosts() const {
  return std::any_of(backends_.begin(), backends_.end(),
                     [](const BackendOptions& b) { return !b.host.empty(); });
}

Status Resolver::ResolveAll() {
  for (size_t i = 0; i < backends_.size(); ++i) {
    const BackendOptions& b = backends_[i];
    if (b.host.empty()) continue;
    Result<std::vector<Address>> r = resolve_(b.host, b.port);
    if (!r.ok())
      return Error(r.error().code(), "backend " + HostPort(b) + ": " + r.error().message());
    if (r->empty()) return Error::Invalid("backend " + HostPort(b) + ": no address");
    addresses_[i] = std::move(r.value());
  }
  return Status::Ok();
}

std::vector<Endpoint> Resolver::Endpoints() const {
  std::vector<Endpoint> out;
  for (size_t i = 0; i < backends_.size(); ++i) {
    const BackendOptions& b = backends_[i];
    if (b.host.empty()) {
      out.push_back({b.address, b.tls, b.sni, b.weight, {}, b.send_proxy});
      continue;
    }
    for (const Address& a : addresses_[i]) {
      const std::string text = a.ToString();
      if (std::any_of(out.begin(), out.end(),
                      [&](const Endpoint& e) { return e.address.ToString() == text; })) {
        continue;
      }
      // TLS to an address of a name still names the name: SNI and the
      // certificate check are about the host, not the IP.
      out.push_back({a, b.tls, b.sni.empty() ? b.host : b.sni, b.weight, b.host, b.send_proxy});
    }
  }
  return out;
}

void Resolver::Start(Duration interval, OnChange on_change) {
  if (!has_hosts()) return;
  on_change_ = std::move(on_change);
  thread_ = std::thread([this, interval] { Run(interval); });
}

void Resolver::Run(Duration interval) {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, interval, [this] { return stop_; })) {
    lock.unlock();
    Refresh();
    lock.lock();
  }
}

void Resolver::Refresh() {
  std::vector<std::string> lines;
  bool changed = false;
  for (size_t i = 0; i < backends_.size(); ++i) {
    const BackendOptions& b = backends_[i];
    if (b.host.empty()) continue;
    Result<std::vector<Address>> r = resolve_(b.host, b.port);
    if (!r.ok() || r->empty()) {
      lines.push_back("backend " + HostPort(b) + ": " +
                      (r.ok() ? std::string("no address") : r.error().message()) + "; keeping " +
                      Join(addresses_[i]));
      continue;
    }
    if (SameAddresses(r.value(), addresses_[i])) continue;
    lines.push_back("backend " + HostPort(b) + " now resolves to " + Join(r.value()) + " (was " +
                    Join(addresses_[i]) + ")");
    addresses_[i] = std::move(r.value());
    changed = true;
  }
  if (lines.empty()) return;
  on_change_(lines, changed ? std::optional(Endpoints()) : std::nullopt);
}

}  // namespace zrelay
