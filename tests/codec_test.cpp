#include "support.hpp"

#include <mproc/codec.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <memory_resource>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

using namespace mproc;
using test::join_bounded;

namespace {

// ---- Types under test -------------------------------------------------------------------------

struct Point {  // trivially copyable: one memcpy
    double x = 0, y = 0;
    std::int32_t tag = 0;
    bool operator==(const Point&) const = default;
};

enum Plain { plain_a, plain_b };
enum class Color : std::uint8_t { red = 1, green = 2, blue = 200 };

struct Person {  // plain aggregate, not trivially copyable: Boost.PFR, field by field
    std::string name;
    int age = 0;
    std::vector<Point> track;
    std::optional<std::string> nickname;
    bool operator==(const Person&) const = default;
};

struct Team {  // aggregate of aggregates and containers
    Person lead;
    std::map<std::string, Person> members;
    std::array<Point, 2> corners{};
    bool operator==(const Team&) const = default;
};

struct Order {  // serialize hook
    std::string symbol;
    std::vector<double> prices;
    int quantity = 0;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(symbol, prices, quantity);
    }
    bool operator==(const Order&) const = default;
};

class Account {  // hook on a class with private state and a value derived on load
public:
    Account() = default;
    Account(std::string owner, std::vector<long> moves) : owner_(std::move(owner)), moves_(std::move(moves)) {
        recompute();
    }
    long balance() const { return balance_; }
    const std::string& owner() const { return owner_; }
    template <class Archive>
    void serialize(Archive& ar) {
        ar(owner_, moves_);
        if constexpr (Archive::is_loading) recompute();
    }
    bool operator==(const Account&) const = default;

private:
    void recompute() {
        balance_ = 0;
        for (long m : moves_) balance_ += m;
    }
    std::string owner_;
    std::vector<long> moves_;
    long balance_ = 0;
};

struct Stamped : Point {  // trivially copyable with a hook: the hook wins
    template <class Archive>
    void serialize(Archive& ar) {
        ar(static_cast<Point&>(*this));
    }
};

struct Nothing {  // a hook that writes nothing
    template <class Archive>
    void serialize(Archive&) {}
    bool operator==(const Nothing&) const = default;
};

struct Tag {  // empty and trivially copyable: encodes to nothing
    auto operator<=>(const Tag&) const = default;
};

struct WithPointer {  // trivially copyable, but the pointer would arrive as a number meaning nothing: refused
    int* p = nullptr;
    int n = 0;
};
struct WithView {  // the same for a view
    int id = 0;
    std::string_view text;
};
struct WithSpan {
    std::span<const double> values;
};
struct HoldsWithPointer {  // nested: the inner struct's pointer is seen through the outer one
    Point where;
    WithPointer inner;
};
struct PointerArray {  // in C arrays and std::arrays too
    int n = 0;
    const char* names[2] = {};
};
struct Bits {  // bit fields and C arrays of values stay bitwise, though PFR cannot name their fields
    unsigned a : 3 = 0;
    unsigned b : 5 = 0;
    int xs[3] = {};
    std::chrono::milliseconds timeout{0};
    std::optional<int> maybe;
    bool operator==(const Bits&) const = default;
};
union Word {  // a union's members cannot be seen: trusted
    std::uint64_t u;
    double d;
};

struct Tree {  // recursive: needs a hook
    int value = 0;
    std::vector<Tree> children;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(value, children);
    }
    bool operator==(const Tree&) const = default;
};

struct Base {
    int id = 0;
    bool operator==(const Base&) const = default;
};
struct Derived : Base {  // an aggregate with a base: not reflected, so not serializable without a hook
    std::string name;
};
struct DerivedWithHook : Base {
    std::string name;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(id, name);
    }
    bool operator==(const DerivedWithHook&) const = default;
};

struct Throws {  // can leave a variant valueless: not trivially copyable, throwing constructor
    Throws() = default;
    Throws(const Throws&) {}
    explicit Throws(int) { throw std::runtime_error("no"); }
    template <class Archive>
    void serialize(Archive&) {}
};

} // namespace

// A library's type that mproc's users cannot edit: it travels with a free serialize function declared
// beside it (found by argument-dependent lookup), through its public interface only.
namespace vendor {
class Money {
public:
    Money() = default;
    Money(std::string currency, long cents) : currency_(std::move(currency)), cents_(cents) {}
    const std::string& currency() const { return currency_; }
    long cents() const { return cents_; }
    bool operator==(const Money&) const = default;

private:
    std::string currency_;
    long cents_ = 0;
};

template <class Archive>
void serialize(Archive& ar, Money& m) {
    std::string currency = m.currency();
    long cents = m.cents();
    ar(currency, cents);
    if constexpr (Archive::is_loading) m = Money(std::move(currency), cents);
}

struct Celsius {  // trivially copyable, yet its free hook is what runs (it checks the range on load)
    double degrees = 0;
    bool operator==(const Celsius&) const = default;
};

template <class Archive>
void serialize(Archive& ar, Celsius& c) {
    ar(c.degrees);
    if constexpr (Archive::is_loading) {
        if (c.degrees < -273.15) throw mproc::SerializationError("Celsius: below absolute zero");
    }
}
} // namespace vendor

namespace {

using Nested = std::map<std::string, std::vector<std::optional<std::variant<int, std::string>>>>;

// ---- Helpers ----------------------------------------------------------------------------------

/// Encodes `v` every way there is, checks the ways agree and stay inside their bytes, decodes it
/// back (fresh and into a non-empty object) and returns the encoding.
template <class T>
std::vector<std::byte> round_trip(const T& v) {
    std::vector<std::byte> bytes = encode(v);
    REQUIRE(encoded_size(v) == bytes.size());

    std::vector<std::byte> guarded(bytes.size() + 16, std::byte{0xAB});
    std::byte* end = encode_into(v, guarded.data() + 8);
    REQUIRE(end == guarded.data() + 8 + bytes.size());
    REQUIRE(std::equal(bytes.begin(), bytes.end(), guarded.begin() + 8));
    for (std::size_t i = 0; i < 8; ++i) {
        REQUIRE(guarded[i] == std::byte{0xAB});
        REQUIRE(guarded[guarded.size() - 1 - i] == std::byte{0xAB});
    }

    CHECK(decode<T>(bytes) == v);
    std::span<const std::byte> unaligned(guarded.data() + 8, bytes.size());
    CHECK(decode<T>(unaligned) == v);
    return bytes;
}

template <class T>
void round_trip_into(const T& v, T reused) {
    auto bytes = encode(v);
    decode_into(bytes, reused);
    CHECK(reused == v);
}

/// Decoding must throw SerializationError, not crash and not throw anything else.
template <class T>
void check_rejected(std::span<const std::byte> bytes) {
    CHECK_THROWS_AS(decode<T>(bytes), SerializationError);
}

/// Every strict prefix of a valid encoding is truncated input.
template <class T>
void check_every_prefix_rejected(const T& v) {
    auto bytes = encode(v);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        INFO("prefix of " << n << " of " << bytes.size() << " bytes");
        check_rejected<T>(std::span(bytes.data(), n));
    }
}

std::vector<std::byte> varint(std::uint64_t v) {
    std::vector<std::byte> out(detail::codec::varint_size(v));
    detail::codec::write_varint(v, out.data());
    return out;
}

std::vector<std::byte> bytes_of(std::initializer_list<int> values) {
    std::vector<std::byte> out;
    for (int v : values) out.push_back(static_cast<std::byte>(v));
    return out;
}

template <class... Parts>
std::vector<std::byte> concat(const Parts&... parts) {
    std::vector<std::byte> out;
    (out.insert(out.end(), parts.begin(), parts.end()), ...);
    return out;
}

Nested sample_nested() {
    return Nested{{"", {}},
                  {"alpha", {std::nullopt, 1, std::string("one"), -7}},
                  {"beta", {std::string(300, 'b'), std::nullopt}},
                  {"gamma", {std::string(), 123456789}}};
}

Team sample_team() {
    Person ann{"Ann", 41, {{1, 2, 3}, {4, 5, 6}}, "annie"};
    Person bob{"Bob", 29, {}, std::nullopt};
    return Team{ann, {{"bob", bob}, {"cy", Person{"Cy", 3, {{7, 8, 9}}, ""}}}, {Point{1, 1, 1}, Point{2, 2, 2}}};
}

} // namespace

// ---- What is serializable, at compile time ----------------------------------------------------

static_assert(Serializable<int> && Serializable<double> && Serializable<char> && Serializable<bool>);
static_assert(Serializable<Plain> && Serializable<Color> && Serializable<std::byte>);
static_assert(Serializable<Point> && Serializable<Tag> && Serializable<Bits> && Serializable<Word>);
static_assert(!Serializable<WithPointer> && !Serializable<WithView> && !Serializable<WithSpan>);
static_assert(!Serializable<HoldsWithPointer> && !Serializable<PointerArray> && !Serializable<std::vector<WithView>>);
static_assert(!Serializable<std::array<const char*, 2>> && !Serializable<std::optional<int*>>);
static_assert(Serializable<std::string> && Serializable<std::vector<int>> && Serializable<std::vector<bool>>);
static_assert(Serializable<std::array<std::string, 3>> && Serializable<std::pair<int, std::string>>);
static_assert(Serializable<std::tuple<>> && Serializable<std::tuple<int, Person, Order>>);
static_assert(Serializable<std::optional<Order>> && Serializable<std::variant<std::monostate, int, Person>>);
static_assert(Serializable<std::unordered_map<int, std::set<std::string>>> && Serializable<Nested>);
static_assert(Serializable<Person> && Serializable<Team> && Serializable<Order> && Serializable<Account>);
static_assert(Serializable<std::chrono::milliseconds>);

static_assert(!Serializable<int*> && !Serializable<const char*> && !Serializable<std::nullptr_t>);
static_assert(!Serializable<int&> && !Serializable<const int> && !Serializable<int[4]>);
static_assert(!Serializable<std::string_view> && !Serializable<std::span<int>>);
static_assert(!Serializable<std::reference_wrapper<int>> && !Serializable<void>);
static_assert(!Serializable<std::unique_ptr<int>> && !Serializable<std::shared_ptr<int>>);
static_assert(!Serializable<std::vector<int*>> && !Serializable<std::map<std::string, std::string_view>>);
struct HoldsUnique {
    std::string s;
    std::unique_ptr<int> p;
};
static_assert(!Serializable<HoldsUnique> && !Serializable<std::optional<HoldsUnique>>);
static_assert(!Serializable<Derived> && Serializable<DerivedWithHook> && Serializable<Tree>);

using detail::codec::culprit_t;
using detail::codec::Kind;
using detail::codec::kind_of;
using detail::codec::Refusal;
using detail::codec::refusal;
// The culprit of a refusal is the innermost type at fault, and the reason is its own.
static_assert(std::is_same_v<culprit_t<HoldsUnique>, std::unique_ptr<int>> && refusal<std::unique_ptr<int>> == Refusal::pointer);
static_assert(std::is_same_v<culprit_t<std::vector<std::map<int, std::string_view>>>, std::string_view>);
static_assert(std::is_same_v<culprit_t<WithView>, WithView> && refusal<WithView> == Refusal::holds_address);
static_assert(std::is_same_v<culprit_t<std::array<int*, 2>>, int*> && refusal<Derived> == Refusal::base_class);
static_assert(std::is_same_v<culprit_t<Person>, Person> && refusal<Person> == Refusal::none);
static_assert(kind_of<Stamped> == Kind::hook, "a hook wins over trivially copyable");
static_assert(kind_of<vendor::Money> == Kind::hook && kind_of<vendor::Celsius> == Kind::hook, "free hooks are hooks");
static_assert(Serializable<std::map<std::string, std::vector<vendor::Money>>>);
static_assert(kind_of<std::filesystem::path> == Kind::path);
// The associative containers are recognised by their interface (mproc includes none of their
// headers): every standard one, with any allocator; a class that only looks like a map by its
// typedefs is not one (this one is the plain aggregate it is).
static_assert(kind_of<std::map<int, int>> == Kind::associative && kind_of<std::multiset<int>> == Kind::associative &&
              kind_of<std::unordered_multimap<int, int>> == Kind::associative &&
              kind_of<std::pmr::map<int, std::string>> == Kind::associative &&
              kind_of<std::pmr::unordered_set<int>> == Kind::associative);
struct MapLookalike {
    using key_type = int;
    using mapped_type = int;
    using value_type = std::pair<const int, int>;
    std::vector<std::pair<int, int>> entries;
};
static_assert(kind_of<MapLookalike> == Kind::aggregate && kind_of<std::vector<std::pair<int, int>>> == Kind::sequence);
static_assert(kind_of<std::chrono::system_clock::time_point> == Kind::bitwise &&
              kind_of<std::chrono::steady_clock::time_point> == Kind::bitwise &&
              kind_of<std::chrono::duration<double>> == Kind::bitwise);
static_assert(kind_of<Point> == Kind::bitwise && kind_of<std::array<Point, 4>> == Kind::bitwise);
static_assert(kind_of<Person> == Kind::aggregate);
static_assert(kind_of<std::optional<int>> == Kind::optional, "optional stays validated though trivially copyable");
static_assert(kind_of<std::variant<int, float>> == Kind::variant);
static_assert(kind_of<std::array<bool, 3>> == Kind::fixed, "bools stay validated inside a std::array");

// ---- Round trips ------------------------------------------------------------------------------

TEST_CASE("arithmetic types, bool and enums round-trip in their own size") {
    CHECK(round_trip(std::int8_t{-5}).size() == 1);
    CHECK(round_trip(std::uint16_t{65535}).size() == 2);
    CHECK(round_trip(std::int32_t{std::numeric_limits<std::int32_t>::min()}).size() == 4);
    CHECK(round_trip(std::uint64_t{std::numeric_limits<std::uint64_t>::max()}).size() == 8);
    round_trip('x');
    round_trip(L'λ');
    round_trip(u8'a');
    round_trip(3.25f);
    round_trip(-1e300);
    round_trip(std::numeric_limits<double>::infinity());
    round_trip(1.5L);
    CHECK(round_trip(true) == bytes_of({1}));
    CHECK(round_trip(false) == bytes_of({0}));
    round_trip(plain_b);
    CHECK(round_trip(Color::blue) == bytes_of({200}));
    round_trip(std::byte{0x7f});
    round_trip(std::chrono::milliseconds(1234));
}

TEST_CASE("a trivially copyable struct is its sizeof(T) bytes, exactly as in memory") {
    Point p{1.5, -2.5, 42};
    auto bytes = round_trip(p);
    REQUIRE(bytes.size() == sizeof(Point));
    CHECK(std::memcmp(bytes.data(), &p, sizeof(Point)) == 0);

    Bits bits{5, 17, {1, 2, 3}, std::chrono::milliseconds(250), 9};
    CHECK(round_trip(bits).size() == sizeof(Bits));

    std::array<Point, 3> arr{Point{1, 2, 3}, Point{4, 5, 6}, Point{7, 8, 9}};
    CHECK(round_trip(arr).size() == sizeof(arr));
}

TEST_CASE("strings round-trip, empty, embedded zeros and long") {
    CHECK(round_trip(std::string()) == bytes_of({0}));
    CHECK(round_trip(std::string("abc")) == bytes_of({3, 'a', 'b', 'c'}));
    round_trip(std::string("a\0b\0", 4));
    auto long_one = std::string(1'000'000, 'z');
    CHECK(round_trip(long_one).size() == 3 + 1'000'000);
    round_trip(std::u16string(u"wide"));
}

TEST_CASE("vectors of every kind of element round-trip: trivially copyable ones as one block") {
    CHECK(round_trip(std::vector<int>{}) == bytes_of({0}));
    auto ints = round_trip(std::vector<int>{1, 2, 3});
    CHECK(ints.size() == 1 + 3 * sizeof(int));
    std::vector<Point> pts{{1, 2, 3}, {4, 5, 6}};
    auto pb = round_trip(pts);
    CHECK(pb.size() == 1 + 2 * sizeof(Point));
    CHECK(std::memcmp(pb.data() + 1, pts.data(), 2 * sizeof(Point)) == 0);
    round_trip(std::vector<std::string>{"", "one", std::string(200, 't')});
    CHECK(round_trip(std::vector<bool>{true, false, true}) == bytes_of({3, 1, 0, 1}));
    round_trip(std::vector<std::vector<int>>{{}, {1}, {2, 3}});
    round_trip(std::vector<Person>{Person{"a", 1, {}, {}}, Person{"b", 2, {{1, 1, 1}}, "bee"}});
    round_trip(std::vector<Order>{Order{"X", {1.0}, 5}, Order{}});
}

TEST_CASE("std::array, pair and tuple round-trip, element-wise where they must be") {
    round_trip(std::array<int, 4>{1, 2, 3, 4});
    round_trip(std::array<std::string, 2>{"left", "right"});
    CHECK(round_trip(std::array<bool, 3>{true, false, true}) == bytes_of({1, 0, 1}));
    CHECK(round_trip(std::array<std::string, 0>{}).empty());
    round_trip(std::pair<int, std::string>{7, "seven"});
    CHECK(round_trip(std::tuple<>{}).empty());
    round_trip(std::tuple<int, std::string, std::vector<double>, bool>{1, "two", {3.0}, true});
    round_trip(std::tuple<Tag, int, Tag>(Tag{}, 9, Tag{}));  // empty members share addresses: nothing is written to them
}

TEST_CASE("optional and variant round-trip in every state") {
    CHECK(round_trip(std::optional<int>{}) == bytes_of({0}));
    CHECK(round_trip(std::optional<int>{5}).size() == 1 + sizeof(int));
    round_trip(std::optional<std::string>{"here"});
    round_trip(std::optional<std::optional<int>>{std::optional<int>{}});
    using V = std::variant<std::monostate, int, std::string, Person>;
    CHECK(round_trip(V{}) == bytes_of({0}));
    round_trip(V{17});
    round_trip(V{std::string("str")});
    round_trip(V{Person{"p", 9, {}, {}}});
    round_trip(std::variant<int, int>{std::in_place_index<1>, 4});
    round_trip_into(V{std::string("new")}, V{3});
}

TEST_CASE("maps and sets round-trip, ordered, unordered and multi") {
    CHECK(round_trip(std::map<int, int>{}) == bytes_of({0}));
    round_trip(std::map<std::string, int>{{"a", 1}, {"b", 2}});
    round_trip(std::map<int, std::string, std::greater<>>{{1, "one"}, {2, "two"}});
    round_trip(std::unordered_map<std::string, std::vector<int>>{{"x", {1, 2}}, {"y", {}}});
    round_trip(std::set<std::string>{"pear", "apple"});
    round_trip(std::unordered_set<int>{5, 6, 7});
    round_trip(std::multimap<int, int>{{1, 1}, {1, 2}, {0, 3}});
    round_trip(std::multiset<int>{2, 2, 2});
    CHECK(round_trip(std::map<int, Tag>{{1, Tag{}}, {2, Tag{}}}).size() == 1 + 2 * sizeof(int));
}

TEST_CASE("plain aggregates round-trip with no user code") {
    round_trip(Person{"Ann", 41, {{1, 2, 3}}, "annie"});
    round_trip(Person{});
    round_trip(sample_team());
}

TEST_CASE("types with a serialize hook round-trip, and the hook can tell loading from saving") {
    round_trip(Order{"ACME", {1.5, 2.5, 3.5}, 100});
    Account acc("ann", {100, -30, 5});
    auto back = decode<Account>(encode(acc));
    CHECK(back.owner() == "ann");
    CHECK(back.balance() == 75);
    CHECK(back == acc);
    Stamped s;
    s.x = 3;
    s.tag = 8;
    auto sb = encode(s);
    CHECK(sb.size() == sizeof(Point));
    CHECK(decode<Stamped>(sb).tag == 8);
    CHECK(round_trip(Nothing{}).empty());
    DerivedWithHook d;
    d.id = 4;
    d.name = "four";
    round_trip(d);
    Tree tree{1, {Tree{2, {}}, Tree{3, {Tree{4, {}}, Tree{}}}}};
    round_trip(tree);
    check_every_prefix_rejected(tree);
}

TEST_CASE("a type users cannot edit round-trips through a free serialize function found by ADL") {
    round_trip(vendor::Money("EUR", 12345));
    round_trip(std::vector<vendor::Money>{{"USD", -1}, {"", 0}, {std::string(200, 'x'), 1L << 40}});
    round_trip(vendor::Celsius{21.5});
    // The hook runs on load: it can refuse what it reads.
    CHECK_THROWS_WITH(decode<vendor::Celsius>(encode(-300.0)), Catch::Contains("below absolute zero"));
}

TEST_CASE("std::filesystem::path, durations and time points round-trip") {
    round_trip(std::filesystem::path());
    round_trip(std::filesystem::path("/tmp/reports 2026/q1.csv"));
    round_trip(std::filesystem::path("relative/ünïcode/./..//x"));
    round_trip(std::vector<std::filesystem::path>{"/a", "b/c", ""});
    round_trip(std::chrono::nanoseconds(-123456789));
    round_trip(std::chrono::duration<double, std::milli>(2.5));
    round_trip(std::chrono::hours(-3));
    auto now = std::chrono::system_clock::now();
    CHECK(round_trip(now).size() == sizeof(now));
    round_trip(std::chrono::time_point_cast<std::chrono::seconds>(now));
    round_trip(std::chrono::steady_clock::now());
    round_trip(std::optional<std::chrono::system_clock::time_point>(now));
}

TEST_CASE("nested containers round-trip") {
    round_trip(sample_nested());
    round_trip(Nested{});
    round_trip(std::vector<std::map<int, std::optional<std::tuple<std::string, Point>>>>{
        {}, {{1, std::nullopt}, {2, std::tuple<std::string, Point>(std::string("t"), Point{1, 2, 3})}}});
    round_trip(std::vector<std::variant<Order, Person, std::monostate>>{Order{"o", {}, 1}, Person{}, std::monostate{}});
}

TEST_CASE("containers of elements that encode to nothing are padded to one byte per element") {
    CHECK(round_trip(std::vector<Tag>(3)) == bytes_of({3, 0, 0, 0}));
    CHECK(round_trip(std::vector<Nothing>(2)) == bytes_of({2, 0, 0}));
    CHECK(round_trip(std::vector<std::monostate>(1)) == bytes_of({1, 0}));
    round_trip(std::vector<std::tuple<>>(1000));
    CHECK(round_trip(std::map<Tag, Nothing>{{Tag{}, Nothing{}}}) == bytes_of({1, 0}));
    CHECK(round_trip(std::set<Tag>{Tag{}}) == bytes_of({1, 0}));
    check_rejected<std::vector<Tag>>(bytes_of({2, 0, 7}));  // padding must be zero
    check_rejected<std::vector<Tag>>(bytes_of({2, 0}));
}

TEST_CASE("large containers of a million elements round-trip") {
    std::vector<int> ints(1'000'000);
    for (std::size_t i = 0; i < ints.size(); ++i) ints[i] = static_cast<int>(i * 2654435761u);
    CHECK(round_trip(ints).size() == 3 + ints.size() * sizeof(int));

    std::vector<std::string> strings(1'000'000);
    for (std::size_t i = 0; i < strings.size(); ++i) strings[i] = std::to_string(i);
    round_trip(strings);

    std::unordered_map<std::uint32_t, std::uint32_t> map;
    map.reserve(1'000'000);
    for (std::uint32_t i = 0; i < 1'000'000; ++i) map.emplace(i, i ^ 0x5555u);
    round_trip(map);
}

TEST_CASE("decode_into reuses the target's storage") {
    std::vector<int> target(1000, 7);
    const int* storage = target.data();
    decode_into(encode(std::vector<int>{1, 2, 3}), target);
    CHECK(target == std::vector<int>{1, 2, 3});
    CHECK(target.data() == storage);
    round_trip_into(sample_nested(), Nested{{"stale", {1, 2}}});
    round_trip_into(std::optional<std::string>{}, std::optional<std::string>{"stale"});
    round_trip_into(Person{"new", 1, {}, {}}, Person{"old", 2, {{1, 2, 3}}, "o"});
}

TEST_CASE("lengths are LEB128 varints: one byte below 128") {
    CHECK(encode(std::string(127, 'a')).size() == 1 + 127);
    CHECK(encode(std::string(128, 'a')).size() == 2 + 128);
    CHECK(encode(std::string(16383, 'a')).size() == 2 + 16383);
    CHECK(encode(std::string(16384, 'a')).size() == 3 + 16384);
    CHECK(varint(300) == bytes_of({0xAC, 0x02}));
    CHECK(varint(std::numeric_limits<std::uint64_t>::max()).size() == 10);
}

TEST_CASE("encoding a valueless variant is a SerializationError") {
    std::variant<int, Throws> v;
    CHECK_THROWS_AS(v.emplace<Throws>(1), std::runtime_error);
    REQUIRE(v.valueless_by_exception());
    CHECK_THROWS_AS(encoded_size(v), SerializationError);
    std::vector<std::byte> buf(64);
    CHECK_THROWS_WITH(encode_into(v, buf.data()), Catch::Contains("valueless"));
}

// ---- Bad input --------------------------------------------------------------------------------

TEST_CASE("every truncation of a valid encoding is a SerializationError") {
    check_every_prefix_rejected(std::int64_t{-1});
    check_every_prefix_rejected(Point{1, 2, 3});
    check_every_prefix_rejected(std::string(200, 's'));
    check_every_prefix_rejected(std::vector<int>(50, 3));
    check_every_prefix_rejected(std::vector<bool>{true, false});
    check_every_prefix_rejected(sample_nested());
    check_every_prefix_rejected(sample_team());
    check_every_prefix_rejected(Order{"ACME", {1, 2}, 3});
    check_every_prefix_rejected(std::tuple<int, std::optional<std::string>, std::set<int>>{1, "x", {1, 2, 3}});
    check_every_prefix_rejected(std::variant<int, std::string>{std::string(130, 'v')});
}

TEST_CASE("trailing bytes after a value are a SerializationError") {
    auto bytes = encode(sample_nested());
    bytes.push_back(std::byte{0});
    check_rejected<Nested>(bytes);
    CHECK_THROWS_WITH(decode<int>(bytes_of({1, 2, 3, 4, 5})), Catch::Contains("1 byte(s) left over"));
    check_rejected<std::tuple<>>(bytes_of({0}));
    check_rejected<Point>(std::vector<std::byte>(sizeof(Point) + 1));
}

TEST_CASE("a huge corrupted length is refused before anything is allocated") {
    const std::uint64_t huge = std::uint64_t{1} << 60;
    auto tail = bytes_of({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    check_rejected<std::vector<int>>(concat(varint(huge), tail));
    check_rejected<std::string>(concat(varint(huge), tail));
    check_rejected<std::vector<std::string>>(concat(varint(huge), tail));
    check_rejected<std::map<int, int>>(concat(varint(huge), tail));
    check_rejected<std::unordered_map<int, int>>(concat(varint(huge), tail));
    check_rejected<std::vector<Nothing>>(concat(varint(huge), tail));
    check_rejected<std::vector<Tag>>(concat(varint(huge), tail));
    check_rejected<std::vector<std::uint64_t>>(concat(varint(std::numeric_limits<std::uint64_t>::max()), tail));
    CHECK_THROWS_WITH(decode<std::vector<int>>(concat(varint(1'000'000), tail)),
                      Catch::Contains("decode<std::vector<int>>") &&
                          Catch::Contains("length 1000000 of std::vector<int> needs at least 4000000 bytes but 12 remain"));
}

TEST_CASE("malformed varints are refused: cut off, too long, not in shortest form") {
    check_rejected<std::string>(bytes_of({0x80}));
    check_rejected<std::string>(bytes_of({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}));
    check_rejected<std::string>(bytes_of({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}));
    CHECK_THROWS_WITH(decode<std::string>(bytes_of({0x81, 0x00, 'a'})), Catch::Contains("shortest form"));
}

TEST_CASE("bad bool, optional flag, variant index and duplicate keys are refused with a reason") {
    CHECK_THROWS_WITH(decode<bool>(bytes_of({2})), Catch::Contains("decode<bool>") && Catch::Contains("0x02"));
    check_rejected<std::vector<bool>>(bytes_of({2, 1, 9}));
    check_rejected<std::array<bool, 2>>(bytes_of({1, 255}));
    CHECK_THROWS_WITH(decode<std::optional<int>>(bytes_of({2, 0, 0, 0, 0})), Catch::Contains("flag of std::optional<int>"));
    using IntOrString = std::variant<int, std::string>;
    CHECK_THROWS_WITH(decode<IntOrString>(bytes_of({2, 0})),
                      Catch::Contains("index 2 of std::variant<int, std::string> is out of range"));
    auto twice = concat(varint(2), encode(5), encode(5));
    CHECK_THROWS_WITH(decode<std::set<int>>(twice), Catch::Contains("duplicate key"));
    check_rejected<std::map<std::string, int>>(concat(varint(2), encode(std::string("k")), encode(1),
                                                      encode(std::string("k")), encode(2)));
    CHECK(decode<std::multiset<int>>(twice).size() == 2);
}

TEST_CASE("random corruption of valid encodings either decodes or throws SerializationError") {
    const std::vector<std::vector<std::byte>> samples{
        encode(sample_nested()), encode(std::vector<std::optional<std::variant<Order, bool, std::string>>>{
                                     {}, Order{"o", {1, 2}, 3}, true, std::string("s")}),
        encode(std::tuple<std::set<std::string>, std::vector<bool>, std::map<int, std::vector<Tag>>>{
            {"a", "b"}, {true, false}, {{1, {Tag{}}}, {2, {}}}})};
    std::mt19937_64 rng(20240601);
    std::size_t decoded = 0, rejected = 0;
    for (int round = 0; round < 100'000; ++round) {
        std::size_t which = rng() % samples.size();
        std::vector<std::byte> bytes = samples[which];
        int flips = 1 + static_cast<int>(rng() % 3);
        for (int f = 0; f < flips; ++f) bytes[rng() % bytes.size()] = static_cast<std::byte>(rng());
        if (rng() % 8 == 0) bytes.resize(rng() % (bytes.size() + 4));
        try {
            switch (which) {
            case 0: (void)decode<Nested>(bytes); break;
            case 1: (void)decode<std::vector<std::optional<std::variant<Order, bool, std::string>>>>(bytes); break;
            default:
                (void)decode<std::tuple<std::set<std::string>, std::vector<bool>, std::map<int, std::vector<Tag>>>>(
                    bytes);
            }
            ++decoded;
        } catch (const SerializationError&) {
            ++rejected;
        }
    }
    CHECK(decoded + rejected == 100'000);
    CHECK(rejected > 0);
    CHECK(decoded > 0);
}

// ---- Across processes -------------------------------------------------------------------------

TEST_CASE("a value encoded by a child process into shared memory decodes in the parent") {
    SharedArray<std::byte> buffer(1 << 16);
    SharedValue<std::size_t> length(0);
    Process child([&] {
        Team team = sample_team();
        Nested nested = sample_nested();
        auto message = std::pair<Team, Nested>{team, nested};
        std::size_t n = encoded_size(message);
        if (n > buffer.size()) mproc::exit(3);
        std::byte* end = encode_into(message, buffer.data());
        length.store(static_cast<std::size_t>(end - buffer.data()));
    });
    child.start();
    join_bounded(child);
    REQUIRE(child.exitcode() == 0);
    auto got = decode<std::pair<Team, Nested>>(std::span<const std::byte>(buffer.data(), length.load()));
    CHECK(got.first == sample_team());
    CHECK(got.second == sample_nested());
}

TEST_CASE("a third-party type with a free hook travels through a Queue to another process") {
    Queue<vendor::Money> q;
    Process child([&q] {
        q.put(vendor::Money("EUR", 100));
        q.put(vendor::Money("JPY", -7));
    });
    child.start();
    auto first = q.get_for(test::bound);
    auto second = q.get_for(test::bound);
    join_bounded(child);
    REQUIRE(first.has_value());
    REQUIRE(second.has_value());
    CHECK(*first == vendor::Money("EUR", 100));
    CHECK(*second == vendor::Money("JPY", -7));
    CHECK(child.exitcode() == 0);
}

TEST_CASE("a third-party type with a free hook travels through Pool::map, both ways") {
    Pool pool(2);
    std::vector<vendor::Money> wallets;
    for (long i = 0; i < 50; ++i) wallets.emplace_back(i % 2 ? "USD" : "EUR", i * 100);
    auto doubled = pool.map([](const vendor::Money& m) { return vendor::Money(m.currency() + "!", m.cents() * 2); },
                            wallets);
    REQUIRE(doubled.size() == wallets.size());
    for (std::size_t i = 0; i < wallets.size(); ++i)
        CHECK(doubled[i] == vendor::Money(wallets[i].currency() + "!", wallets[i].cents() * 2));
}

TEST_CASE("a std::filesystem::path and a time point travel through a Pipe") {
    auto [rx, tx] = Pipe<std::pair<std::filesystem::path, std::chrono::system_clock::time_point>>(false);
    const auto stamp = std::chrono::system_clock::now();
    Process child([&tx, stamp] { tx.send({std::filesystem::path("/var/data/run 7") / "out.bin", stamp}); });
    child.start();
    REQUIRE(rx.poll(test::bound));
    auto [path, when] = rx.recv();
    join_bounded(child);
    CHECK(path == std::filesystem::path("/var/data/run 7/out.bin"));
    CHECK(path.filename() == "out.bin");
    CHECK(when == stamp);
    CHECK(child.exitcode() == 0);
}
