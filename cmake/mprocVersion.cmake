# Reads mproc's version from include/mproc/version.hpp, where it is written once ({fmt} and spdlog do
# the same): sets MPROC_HEADER_VERSION to "MAJOR.MINOR.PATCH" for project(mproc VERSION ...).
file(READ ${CMAKE_CURRENT_LIST_DIR}/../include/mproc/version.hpp _mproc_version_text)
foreach(_part MAJOR MINOR PATCH)
  if(NOT _mproc_version_text MATCHES "\n#define MPROC_VERSION_${_part} ([0-9]+)\n")
    message(FATAL_ERROR "mproc: include/mproc/version.hpp must define MPROC_VERSION_${_part} as a number")
  endif()
  set(_mproc_version_${_part} ${CMAKE_MATCH_1})
endforeach()
set(MPROC_HEADER_VERSION "${_mproc_version_MAJOR}.${_mproc_version_MINOR}.${_mproc_version_PATCH}")
unset(_mproc_version_text)
unset(_part)
