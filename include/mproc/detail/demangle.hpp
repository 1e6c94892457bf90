// Readable type names: "std::runtime_error", not "St13runtime_error".
#pragma once

#include <cxxabi.h>
#include <exception>
#include <string>
#include <typeinfo>

#include <boost/core/demangle.hpp>

namespace mproc::detail {

/// The demangled name of a type, or its mangled name if demangling fails.
inline std::string demangle(const std::type_info& type) { return boost::core::demangle(type.name()); }

/// The type of the exception being handled, inside a catch block.
inline std::string current_exception_type() {
    const std::type_info* t = abi::__cxa_current_exception_type();
    return t ? demangle(*t) : std::string("unknown exception");
}

/// The exception being handled, as text that can travel: its demangled type and its what().
struct ExceptionText {
    std::string type;
    std::string message;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(type, message);
    }
};

/// Describes the exception being handled (call inside a catch block).
inline ExceptionText describe_current_exception() {
    ExceptionText e{current_exception_type(), "(not derived from std::exception)"};
    try {
        throw;
    } catch (const std::exception& ex) {
        e.message = ex.what();
    } catch (...) {
    }
    return e;
}

} // namespace mproc::detail
