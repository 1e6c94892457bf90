#include <catch2/catch.hpp>
#include <mproc/mproc.hpp>
TEST_CASE("future placeholder") { CHECK(true); }
