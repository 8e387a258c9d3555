// RunHooks: what main() lends a run: how to notice an interrupt and where
// progress lines go. Shared by the TCP runner and the UDP client.
#pragma once

#include <cstdio>
#include <functional>

namespace zrelay::load {

struct RunHooks {
  // Polled every few milliseconds while waiting; true ends the run early
  // (main() wires it to SIGINT/SIGTERM). Null: never.
  std::function<bool()> interrupted;
  // Progress lines go here (runs longer than ~3 s); null: none.
  std::FILE* progress = nullptr;
};

}  // namespace zrelay::load
