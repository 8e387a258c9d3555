#include "relay/sni_router.h"

#include <algorithm>
#include <cctype>

namespace zrelay {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string ServerNamePatternError(std::string_view pattern) {
  if (pattern.empty()) return "empty server name";
  const std::string_view rest = pattern.substr(0, 2) == "*." ? pattern.substr(2) : pattern;
  if (rest.empty() || rest.find('*') != std::string_view::npos) {
    return "server name '" + std::string(pattern) +
           "': a wildcard must be a whole first label ('*.example.com')";
  }
  return {};
}

SniRouter::SniRouter(const std::vector<RouteOptions>& routes) {
  for (size_t i = 0; i < routes.size(); ++i) {
    for (const std::string& name : routes[i].server_names) {
      if (name.substr(0, 2) == "*.") {
        wildcards_.push_back({Lower(name.substr(1)), i});
      } else {
        exact_.emplace(Lower(name), i);  // a name listed twice keeps its first route
      }
    }
  }
  // Stable: equal suffixes keep the order of their routes.
  std::stable_sort(wildcards_.begin(), wildcards_.end(), [](const Wildcard& a, const Wildcard& b) {
    return a.suffix.size() > b.suffix.size();
  });
}

std::optional<size_t> SniRouter::Match(std::string_view server_name) const {
  if (server_name.empty()) return std::nullopt;
  const std::string name = Lower(server_name);
  if (auto it = exact_.find(name); it != exact_.end()) return it->second;
  for (const Wildcard& w : wildcards_) {
    // At least one character of label before the suffix's dot.
    if (name.size() > w.suffix.size() &&
        name.compare(name.size() - w.suffix.size(), w.suffix.size(), w.suffix) == 0) {
      return w.route;
    }
  }
  return std::nullopt;
}

}  // namespace zrelay
