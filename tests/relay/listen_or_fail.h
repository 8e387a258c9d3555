// Engine::Listen in a test: the bound address, or a failure recorded
// against the test (naming Listen's error) and an empty Address.
#pragma once

#include <gtest/gtest.h>

#include "relay/relay.h"

namespace zrelay::testing {

inline Address ListenOrFail(Engine& engine, const ListenOptions& options,
                            ListenerId* id_out = nullptr) {
  auto id = engine.Listen(options);
  EXPECT_TRUE(id.ok()) << id.error().message();
  if (!id.ok()) return {};
  if (id_out != nullptr) *id_out = *id;
  return engine.ListenAddress(*id).value();
}

}  // namespace zrelay::testing
