// Catch2's main for every test binary. Its POSIX signal handlers are off: the tests fork, and a child
// that is killed or crashes on purpose must die of that signal (its exit code is what the parent
// checks), not run the parent's reporter inside a signal handler.
#define CATCH_CONFIG_MAIN
#define CATCH_CONFIG_NO_POSIX_SIGNALS
#include <catch2/catch.hpp>
