#include <catch2/catch.hpp>
#include <mproc/mproc.hpp>
TEST_CASE("process placeholder") { CHECK(true); }
