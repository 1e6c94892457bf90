// expect: spawn: the function's return type is not serializable
#include <mproc/spawn.hpp>
#include <string>
class Opaque {  // private members, no serialize() hook: the codec cannot see inside
    std::string secret_ = "x";
};
int main() { auto f = mproc::spawn([] { return Opaque{}; }); }
