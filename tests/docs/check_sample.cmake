# Runs extract_snippets.py on one sample page and compiles the result; the sample's first line says
# what must happen: "<!-- expect: compiles -->", "<!-- expect: rejected REGEX -->" (the extractor
# refuses the page with a message matching REGEX) or "<!-- expect: fails REGEX -->" (the extractor
# accepts it and the compiler fails with a message matching REGEX).
file(STRINGS ${SAMPLE} first LIMIT_COUNT 1)
if(NOT first MATCHES "^<!-- expect: (compiles|rejected|fails) ?(.*) -->$")
  message(FATAL_ERROR "${SAMPLE}: the first line must be '<!-- expect: compiles|rejected REGEX|fails REGEX -->'")
endif()
set(expect ${CMAKE_MATCH_1})
set(regex "${CMAKE_MATCH_2}")
get_filename_component(name ${SAMPLE} NAME)

execute_process(COMMAND ${PYTHON} ${EXTRACTOR} --out ${OUT} --name ${name} ${SAMPLE}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(expect STREQUAL "rejected")
  if(rc EQUAL 0)
    message(FATAL_ERROR "the extractor accepted ${name}, which it must refuse")
  elseif(NOT out MATCHES "${regex}")
    message(FATAL_ERROR "the extractor refused ${name}, but not with a message matching '${regex}'")
  endif()
  return()
elseif(NOT rc EQUAL 0)
  message(FATAL_ERROR "the extractor refused ${name}")
endif()

string(REPLACE "|" ";" include_dirs "${INCLUDE_DIRS}")
string(REPLACE "|" ";" flags "${FLAGS}")
list(TRANSFORM include_dirs PREPEND "-I")
execute_process(COMMAND ${CXX} -std=c++20 -fsyntax-only ${flags} ${include_dirs} ${OUT}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(expect STREQUAL "compiles")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name} does not compile")
  endif()
elseif(rc EQUAL 0)
  message(FATAL_ERROR "${name} compiled, but it must not")
elseif(NOT out MATCHES "${regex}")
  message(FATAL_ERROR "${name} failed to compile, but without a message matching '${regex}'")
endif()
