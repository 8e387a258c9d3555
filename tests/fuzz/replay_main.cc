// A main for fuzz targets without libFuzzer, so the normal test run (g++,
// -c opt and --config=asan) exercises every target and its property checks:
// it feeds LLVMFuzzerTestOneInput each file of the corpus directories named
// on the command line, then a fixed number of mutants of each, drawn from a
// seeded generator so every run replays the same inputs. Each input is an
// exactly-sized heap copy, so ASan sees a read one byte past the end.
//
// On a crash (a failed FUZZ_CHECK, ASan or UBSan abort) it prints which
// input it was and its bytes in hex; save them to a file to replay it with
// the libFuzzer binary (tools/fuzz.sh).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

constexpr int kMutantsPerFile = 1000;
constexpr uint32_t kSeed = 20261130;
constexpr int kMaxEdits = 4;

// The input being run, for the crash handler.
char g_label[512];
const uint8_t* g_data = nullptr;
size_t g_size = 0;

void WriteAll(const char* s, size_t n) {
  while (n > 0) {
    const ssize_t w = write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

// Async-signal-safe: write(2) only, no allocation.
void OnCrash(int sig) {
  static const char kHex[] = "0123456789abcdef";
  WriteAll("replay: crashed on ", 19);
  WriteAll(g_label, strnlen(g_label, sizeof(g_label)));
  WriteAll(", bytes in hex:\n", 16);
  for (size_t i = 0; i < g_size; ++i) {
    const char pair[2] = {kHex[g_data[i] >> 4], kHex[g_data[i] & 15]};
    WriteAll(pair, 2);
  }
  WriteAll("\n", 1);
  signal(sig, SIG_DFL);
  raise(sig);
}

int Run(const std::string& input, const std::string& label) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[std::max<size_t>(input.size(), 1)]);
  std::copy(input.begin(), input.end(), copy.get());
  std::snprintf(g_label, sizeof(g_label), "%s", label.c_str());
  g_data = copy.get();
  g_size = input.size();
  const int rc = LLVMFuzzerTestOneInput(copy.get(), input.size());
  g_data = nullptr;
  g_size = 0;
  return rc;
}

// The mutations libFuzzer starts with, in miniature: bit flips, boundary
// bytes, inserts, erases, truncation, duplicated chunks, 16-bit length
// fields nudged (the ClientHello is full of them) and splices with another
// corpus file.
std::string Mutate(std::string s, const std::vector<std::string>& corpus, std::mt19937& rng) {
  static const uint8_t kInteresting[] = {0,    1,    0x03, 0x16, 0x20, 0x2e, 0x30,
                                         0x3a, 0x40, 0x5b, 0x5d, 0x7f, 0x80, 0xff};
  auto pick = [&rng](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  const int edits = 1 + static_cast<int>(pick(kMaxEdits));
  for (int e = 0; e < edits; ++e) {
    switch (pick(8)) {
      case 0:
        if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1u << pick(8));
        break;
      case 1:
        if (!s.empty())
          s[pick(s.size())] = static_cast<char>(kInteresting[pick(sizeof(kInteresting))]);
        break;
      case 2:
        s.insert(s.begin() + static_cast<std::ptrdiff_t>(pick(s.size() + 1)),
                 static_cast<char>(pick(256)));
        break;
      case 3:
        if (!s.empty()) {
          const size_t at = pick(s.size());
          s.erase(at, 1 + pick(std::min<size_t>(s.size() - at, 16)));
        }
        break;
      case 4:
        s.resize(pick(s.size() + 1));
        break;
      case 5:
        if (!s.empty()) {
          const size_t at = pick(s.size());
          const std::string chunk = s.substr(at, 1 + pick(std::min<size_t>(s.size() - at, 32)));
          s.insert(pick(s.size() + 1), chunk);
        }
        break;
      case 6:
        if (s.size() >= 2) {
          const size_t at = pick(s.size() - 1);
          uint16_t v = static_cast<uint16_t>((uint8_t(s[at]) << 8) | uint8_t(s[at + 1]));
          static const int kDeltas[] = {-2, -1, 1, 2, 0x100};
          v = pick(4) == 0 ? static_cast<uint16_t>(pick(2) ? 0xffff : 0)
                           : static_cast<uint16_t>(v + kDeltas[pick(std::size(kDeltas))]);
          s[at] = static_cast<char>(v >> 8);
          s[at + 1] = static_cast<char>(v & 0xff);
        }
        break;
      case 7: {
        const std::string& other = corpus[pick(corpus.size())];
        s = s.substr(0, pick(s.size() + 1)) + other.substr(pick(other.size() + 1));
        break;
      }
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(argv[i], ec)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
    if (ec) {
      std::fprintf(stderr, "replay: cannot read corpus directory %s: %s\n", argv[i],
                   ec.message().c_str());
      return 1;
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR...  (found no corpus files)\n", argv[0]);
    return 1;
  }
  std::sort(files.begin(), files.end());  // a fixed order, so the mutants are fixed too
  std::vector<std::string> corpus;
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    corpus.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  signal(SIGABRT, OnCrash);
  signal(SIGSEGV, OnCrash);
  std::mt19937 rng(kSeed);
  size_t runs = 0;
  size_t rejected = 0;  // inputs the target declined (returned -1)
  // The corpus first, so a reproducer kept there fails under its own name.
  for (size_t f = 0; f < corpus.size(); ++f) {
    rejected += Run(corpus[f], files[f].filename().string()) != 0;
    ++runs;
  }
  for (size_t f = 0; f < corpus.size(); ++f) {
    const std::string name = files[f].filename().string();
    for (int m = 0; m < kMutantsPerFile; ++m) {
      rejected += Run(Mutate(corpus[f], corpus, rng), name + " mutant " + std::to_string(m)) != 0;
      ++runs;
    }
  }
  std::printf("replay: %zu corpus files, %zu inputs, %zu declined by the target\n", corpus.size(),
              runs, rejected);
  if (rejected == runs) {
    std::fprintf(stderr, "replay: the target declined every input, so it checked nothing\n");
    return 1;
  }
  return 0;
}
