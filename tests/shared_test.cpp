#include <catch2/catch.hpp>
#include <mproc/mproc.hpp>
TEST_CASE("shared placeholder") { CHECK(true); }
