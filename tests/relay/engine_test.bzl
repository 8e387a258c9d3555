"""engine_test: a relay test that starts Engines, run on both io backends."""

def engine_test(name, srcs, deps, size = "medium", **kwargs):
    """Builds the test once and runs it twice.

    `name` runs its engines on epoll, `name`_uring on io_uring (through
    ZRELAY_TEST_IO, which testing::StartEngine reads). The code is one
    library linked into both binaries, so it compiles once.

    Args:
      name: the epoll test; the io_uring one is name + "_uring".
      srcs: the test's sources.
      deps: as a cc_test's.
      size: the tests' size.
      **kwargs: passed to both cc_test rules (tags, shard_count, ...).
    """
    native.cc_library(
        name = name + "_lib",
        testonly = True,
        srcs = srcs,
        deps = deps,
        alwayslink = True,
    )
    native.cc_test(
        name = name,
        size = size,
        deps = [":" + name + "_lib"],
        **kwargs
    )
    native.cc_test(
        name = name + "_uring",
        size = size,
        deps = [":" + name + "_lib"],
        env = {"ZRELAY_TEST_IO": "uring"},
        **kwargs
    )
