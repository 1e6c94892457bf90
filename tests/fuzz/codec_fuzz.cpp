// libFuzzer target: the codec's decoder. Any bytes must decode or throw SerializationError, never
// crash or read out of bounds; what decodes must encode back to the same value.
#include <mproc/codec.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace {

struct Tag {
    auto operator<=>(const Tag&) const = default;
};
struct Nothing {
    template <class A>
    void serialize(A&) {}
    bool operator==(const Nothing&) const = default;
};
struct Person { // a plain aggregate: encoded field by field through Boost.PFR
    std::string name;
    int age = 0;
    std::vector<long> v;
    std::optional<std::string> nick;
    bool flag = false;
    bool operator==(const Person&) const = default;
};
enum class Plain : int { a, b, c };

using T1 = std::map<std::string, std::vector<std::optional<std::variant<int, std::string, Person>>>>;
using T2 = std::tuple<std::set<std::string>, std::vector<bool>, std::map<int, std::vector<Tag>>, std::vector<Nothing>,
                      std::unordered_map<int, std::set<Tag>>, std::array<bool, 3>, Plain>;
using T3 = std::vector<std::variant<std::monostate, std::vector<Nothing>, std::multiset<std::string>, std::pair<bool, Person>>>;

template <class T>
void one(const std::uint8_t* d, std::size_t n) {
    try {
        T v = mproc::decode<T>(std::span(reinterpret_cast<const std::byte*>(d), n));
        if (mproc::decode<T>(mproc::encode(v)) != v) __builtin_trap();
    } catch (const mproc::SerializationError&) {
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* d, std::size_t n) {
    if (n == 0) return 0;
    switch (d[0] % 3) {
    case 0: one<T1>(d + 1, n - 1); break;
    case 1: one<T2>(d + 1, n - 1); break;
    default: one<T3>(d + 1, n - 1); break;
    }
    return 0;
}
