// Compiling a template's body only where it is used. g++ checks the parts of a template's body that
// do not depend on its parameters where the template is defined, and instantiates the standard
// templates they use then, in every translation unit that includes the header. Naming a type as
// dependent_t<P, T>, where P is one of the template's parameters, makes what uses it dependent: it is
// compiled only where the template is instantiated. (A plain alias would not do: an alias template
// that ignores its parameter is replaced by its type at once.)
#pragma once

namespace mproc::detail {

template <class P, class T>
struct dependent_type {
    using type = T;
};

/// T, spelled as if it depended on P.
template <class P, class T>
using dependent_t = typename dependent_type<P, T>::type;

} // namespace mproc::detail
