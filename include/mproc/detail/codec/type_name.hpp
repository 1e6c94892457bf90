// Readable type names for codec error messages: "std::map<std::string, std::vector<int>>" rather
// than the demangled spelling with every allocator, comparator and inline namespace.
#pragma once

#include <string>
#include <typeinfo>

#include "../demangle.hpp"
#include "kind.hpp"

namespace mproc::detail::codec {

template <class T>
std::string type_name();

template <class... E>
std::string type_names(TypeList<E...>) {
    std::string out;
    ((out += (out.empty() ? "" : ", ") + type_name<E>()), ...);
    return out;
}

/// The readable name of T. Only called on error paths: it allocates freely.
template <class T>
std::string type_name() {
    using P = typename Parts<T>::type;
    if constexpr (std::is_same_v<T, std::string>) {
        return "std::string";
    } else if constexpr (path_like<T>) {
        return "std::filesystem::path";
    } else if constexpr (is_std_array<T>) {
        return "std::array<" + type_names(P{}) + ", " + std::to_string(std::tuple_size_v<T>) + ">";
    } else if constexpr (is_sequence<T> || is_map<T> || is_set<T> || is_product<T> ||
                         is_instance_of<T, std::optional> || is_instance_of<T, std::variant>) {
        std::string full = detail::demangle(typeid(T));  // "std::__cxx11::basic_string<...>", "std::map<...>"
        std::string head = full.substr(0, full.find('<'));
        if (auto inline_ns = head.find("::__"); inline_ns != std::string::npos)  // std::__cxx11::, std::__debug::
            head.erase(inline_ns, head.find("::", inline_ns + 2) - inline_ns);
        return head + "<" + type_names(P{}) + ">";
    } else {
        return detail::demangle(typeid(T));
    }
}

} // namespace mproc::detail::codec
