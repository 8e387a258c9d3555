// PairOptions::filter: a filtered way delivers what its filter made of the
// bytes, in order, with OnEnd's output before the FIN, byte for byte:
// transforming (uppercase), growing (every byte twice), shrinking (every
// other byte dropped) and holding everything back until the end. A filtered
// way always copies, even in splice mode; the other way is untouched.
// Listener pairs get a filter of their own each.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "relay/relay.h"
#include "tests/relay/close_recorder.h"
#include "tests/relay/listen_or_fail.h"
#include "tests/relay/pair_test_util.h"
#include "tests/relay/recording_backend.h"
#include "tests/relay/relay_test_util.h"
#include "tests/support/loop_test_util.h"

namespace zrelay {
namespace {

using testing::CloseRecorder;
using testing::MakeLegPair;
using testing::Pattern;

constexpr Duration kIoTimeout = seconds(20);

class Uppercase final : public Filter {
 public:
  void OnData(std::string_view in, std::string& out) override {
    for (char c : in) out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
};

class Doubling final : public Filter {
 public:
  void OnData(std::string_view in, std::string& out) override {
    for (char c : in) out.append(2, c);
  }
  void OnEnd(std::string& out) override { out += "<end>"; }
};

// Keeps the bytes at even stream offsets: its output depends on every byte
// it saw before, so two pairs sharing one would get it wrong.
class DropOdd final : public Filter {
 public:
  void OnData(std::string_view in, std::string& out) override {
    for (char c : in) {
      if (offset_++ % 2 == 0) out.push_back(c);
    }
  }
  void OnEnd(std::string& out) override { out += "[" + std::to_string(offset_) + "]"; }

 private:
  uint64_t offset_ = 0;
};

// Nothing until the end, then everything, reversed: OnEnd's output is the
// whole stream (several rings' worth).
class ReverseAtEnd final : public Filter {
 public:
  void OnData(std::string_view in, std::string& /*out*/) override { held_.append(in); }
  void OnEnd(std::string& out) override { out.append(held_.rbegin(), held_.rend()); }

 private:
  std::string held_;
};

std::string ApplyUppercase(const std::string& in) {
  std::string out;
  Uppercase().OnData(in, out);
  return out;
}
std::string ApplyDoubling(const std::string& in) {
  std::string out;
  Doubling f;
  f.OnData(in, out);
  f.OnEnd(out);
  return out;
}
std::string ApplyDropOdd(const std::string& in) {
  std::string out;
  DropOdd f;
  f.OnData(in, out);
  f.OnEnd(out);
  return out;
}

struct FilterCase {
  const char* name;
  std::function<std::unique_ptr<Filter>()> make;
  std::function<std::string(const std::string&)> expect;
};

const FilterCase kCases[] = {
    {"Uppercase", [] { return std::make_unique<Uppercase>(); }, ApplyUppercase},
    {"Doubling", [] { return std::make_unique<Doubling>(); }, ApplyDoubling},
    {"DropOdd", [] { return std::make_unique<DropOdd>(); }, ApplyDropOdd},
    {"ReverseAtEnd", [] { return std::make_unique<ReverseAtEnd>(); },
     [](const std::string& in) { return std::string(in.rbegin(), in.rend()); }},
};

struct Param {
  RelayMode mode;
  size_t filter;  // index into kCases
};

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  const char* mode = RelayModeName(info.param.mode);
  return std::string(mode) + kCases[info.param.filter].name;
}

class FilterTest : public ::testing::TestWithParam<Param> {};

// A -> B is filtered, B -> A is not; both carry 2 MiB at once.
TEST_P(FilterTest, DeliversTheFiltersOutputThenFin) {
  const FilterCase& filter = kCases[GetParam().filter];
  auto engine = testing::StartEngine({.workers = 1, .mode = GetParam().mode});
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  auto a = MakeLegPair(AF_INET);
  auto b = MakeLegPair(AF_INET);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int fd : {a->app.get(), b->app.get()}) testing::SetIoTimeout(fd, kIoTimeout);
  PairOptions options;
  options.filter = [&filter](Flow flow) -> std::unique_ptr<Filter> {
    return flow == Flow::kAToB ? filter.make() : nullptr;
  };
  CloseRecorder closes;
  (*engine)->Pipe(Leg{std::move(a->leg)}, Leg{std::move(b->leg)}, closes.Callback(), options);

  const std::string up = Pattern(1, 0, 2 << 20);
  const std::string down = Pattern(2, 0, 2 << 20);
  testing::Stream at_b, at_a;
  std::thread b_side([&] {
    std::thread b_reads([&] { at_b = testing::ReadToEof(b->app.get()); });
    EXPECT_TRUE(testing::SendAll(b->app.get(), down));
    ::shutdown(b->app.get(), SHUT_WR);
    b_reads.join();
  });
  std::thread a_reads([&] { at_a = testing::ReadToEof(a->app.get()); });
  EXPECT_TRUE(testing::SendAll(a->app.get(), up));
  ::shutdown(a->app.get(), SHUT_WR);
  a_reads.join();
  b_side.join();

  const std::string expected = filter.expect(up);
  EXPECT_EQ(at_b.error, 0);
  EXPECT_EQ(at_b.data.size(), expected.size());
  EXPECT_TRUE(at_b.data == expected) << "the filtered way differs";
  EXPECT_EQ(at_a.error, 0);
  EXPECT_TRUE(at_a.data == down) << "the unfiltered way differs";

  std::vector<PairStats> closed = closes.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].cause, CloseCause::kDone) << closed[0].detail;
  EXPECT_EQ(closed[0].a_to_b, expected.size()) << "what B got is what counts";
  EXPECT_EQ(closed[0].b_to_a, down.size());
  const WorkerStats stats = (*engine)->Stats().total;
  EXPECT_EQ(stats.bytes_a_to_b, expected.size());
  if (GetParam().mode == RelayMode::kSplice) {
    EXPECT_EQ(stats.bytes_copied, expected.size()) << "the filtered way copies";
    EXPECT_EQ(stats.bytes_spliced, down.size()) << "the other one still splices";
  } else {
    EXPECT_EQ(stats.bytes_copied + stats.bytes_spliced, expected.size() + down.size());
  }
}

std::vector<Param> AllParams() {
  std::vector<Param> out;
  for (RelayMode mode : {RelayMode::kSplice, RelayMode::kCopy, RelayMode::kAuto}) {
    for (size_t i = 0; i < std::size(kCases); ++i) out.push_back({mode, i});
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(ModesAndFilters, FilterTest, ::testing::ValuesIn(AllParams()),
                         ParamName);

// ListenOptions::pair: each client's pair gets filters of its own (DropOdd
// keeps count of the stream it saw), A being the client: its bytes go
// through the kAToB filter, the backend's reply through the kBToA one.
TEST(ListenerFilterTest, EachPairGetsItsOwnFilters) {
  auto engine = testing::StartEngine({.workers = 2, .mode = RelayMode::kSplice});
  ASSERT_TRUE(engine.ok()) << engine.error().message();
  const std::string reply = "the backend's answer";
  testing::RecordingBackend backend(reply);
  ListenOptions options;
  options.address = testing::Loopback(AF_INET);
  options.backends = {BackendOptions{backend.address(), nullptr, {}}};
  options.pair.filter = [](Flow flow) -> std::unique_ptr<Filter> {
    if (flow == Flow::kAToB) return std::make_unique<DropOdd>();
    return std::make_unique<Uppercase>();
  };
  CloseRecorder closes;
  options.on_close = closes.Callback();
  const Address address = testing::ListenOrFail(**engine, options);
  ASSERT_NE(address.family(), AF_UNSPEC);

  const std::string requests[] = {"abcdefghij", Pattern(3, 0, 300001)};
  for (const std::string& request : requests) {
    auto client = testing::BlockingConnect(address);
    ASSERT_TRUE(client.ok()) << client.error().message();
    testing::SetIoTimeout(client->get(), kIoTimeout);
    ASSERT_TRUE(testing::SendAll(client->get(), request));
    ::shutdown(client->get(), SHUT_WR);
    const testing::Stream answer = testing::ReadToEof(client->get());
    EXPECT_EQ(answer.error, 0);
    EXPECT_EQ(answer.data, ApplyUppercase(reply));
  }
  std::vector<PairStats> closed = closes.WaitFor(2);
  ASSERT_EQ(closed.size(), 2u);
  const std::vector<std::string> got = backend.received();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], "acegi[10]");
  EXPECT_TRUE(got[1] == ApplyDropOdd(requests[1])) << "the second pair's filter started afresh";
}

}  // namespace
}  // namespace zrelay
