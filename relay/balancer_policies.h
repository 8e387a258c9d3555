// The policies behind Balancer::Create, one .cc each.
#pragma once

#include <memory>

#include "relay/balancer.h"

namespace zrelay {

std::unique_ptr<Balancer> NewRoundRobinBalancer(const BackendSet& backends);
std::unique_ptr<Balancer> NewLeastConnBalancer(const BackendSet& backends);
std::unique_ptr<Balancer> NewMaglevBalancer(const BackendSet& backends);

}  // namespace zrelay
