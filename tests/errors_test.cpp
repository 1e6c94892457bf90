#include <catch2/catch.hpp>
#include <mproc/mproc.hpp>
TEST_CASE("errors placeholder") { CHECK(true); }
