# Builds and runs a program against mproc the ways a user gets it. Fails on any step's failure.
#   MODE=find_package      configure, build (the mproc-shm tool) and install mproc into a scratch
#                          prefix, then build tests/consumers/app with find_package(mproc)
#   MODE=install_only      the same without building: `cmake --install` right after configuring, as a
#                          packager of a header-only library does (tools left at their default, ON);
#                          checks what was installed, then builds the app against it
#   MODE=pkg_config        install as install_only, then compile the app's main.cpp by hand with
#                          `pkg-config --cflags --libs mproc` (PKG_CONFIG names the program)
#   MODE=mpi               install as install_only, then build tests/consumers/mpi_app with
#                          find_package(mproc COMPONENTS mpi) and run it under MPIEXEC with 2 ranks
#                          (MPIEXEC_FLAGS and the environment MPI_ENV: '|'-separated lists)
#   MODE=add_subdirectory  pull the source tree in
# EXPECTED_VERSION is mproc's project version: the installed package and pkg-config must report it.
set(dir ${WORK_DIR}/${MODE})
file(REMOVE_RECURSE ${dir})
file(MAKE_DIRECTORY ${dir})

function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer (${MODE}) step failed (${rc}): ${ARGN}")
  endif()
endfunction()

# Like step, but returns the command's standard output (stripped) in `var`.
function(step_output var)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer (${MODE}) step failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(${var} "${out}" PARENT_SCOPE)
endfunction()

function(expect_file path)
  if(NOT EXISTS ${dir}/prefix/${path})
    message(FATAL_ERROR "consumer (${MODE}): the install lacks ${path}")
  endif()
endfunction()

set(prefix ${dir}/prefix)
set(app_args -DMODE=${MODE} -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release)
if(MODE STREQUAL "add_subdirectory")
  list(APPEND app_args -DMPROC_SOURCE_DIR=${MPROC_SOURCE_DIR})
else()
  set(mproc_args -DCMAKE_CXX_COMPILER=${CXX} -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_BUILD_BENCH=OFF)
  if(MODE STREQUAL "find_package")
    step(${CMAKE_COMMAND} -S ${MPROC_SOURCE_DIR} -B ${dir}/mproc-build ${mproc_args} -DMPROC_INSTALL=ON)
    step(${CMAKE_COMMAND} --build ${dir}/mproc-build) # the mproc-shm tool; the library itself is headers
    step(${CMAKE_COMMAND} --install ${dir}/mproc-build --prefix ${prefix})
    expect_file(bin/mproc-shm)
  else()
    step(${CMAKE_COMMAND} -S ${MPROC_SOURCE_DIR} -B ${dir}/mproc-build ${mproc_args})
    step(${CMAKE_COMMAND} --install ${dir}/mproc-build --prefix ${prefix}) # nothing built
  endif()
  foreach(f include/mproc/mproc.hpp include/mproc/version.hpp lib/cmake/mproc/mprocConfig.cmake
            lib/cmake/mproc/mprocConfigVersion.cmake lib/cmake/mproc/mprocMPI.cmake share/pkgconfig/mproc.pc
            share/doc/mproc/LICENSE share/doc/mproc/CHANGELOG.md)
    expect_file(${f})
  endforeach()
  list(APPEND app_args -DCMAKE_PREFIX_PATH=${prefix} -DEXPECTED_VERSION=${EXPECTED_VERSION})
endif()

if(MODE STREQUAL "pkg_config")
  set(ENV{PKG_CONFIG_PATH} ${prefix}/share/pkgconfig)
  step_output(version ${PKG_CONFIG} --modversion mproc)
  if(NOT version STREQUAL EXPECTED_VERSION)
    message(FATAL_ERROR "pkg-config --modversion mproc says '${version}', CMake's project version is ${EXPECTED_VERSION}")
  endif()
  step_output(cflags ${PKG_CONFIG} --cflags mproc)
  step_output(libs ${PKG_CONFIG} --libs mproc)
  message("pkg-config --cflags mproc: ${cflags}\npkg-config --libs mproc: ${libs}")
  string(FIND "${cflags}" "-I${prefix}/" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "pkg-config --cflags mproc does not point into the install prefix: ${cflags}")
  endif()
  separate_arguments(cflags UNIX_COMMAND "${cflags}")
  separate_arguments(libs UNIX_COMMAND "${libs}")
  step(${CXX} -std=c++20 ${cflags} "-DEXPECTED_VERSION=\"${EXPECTED_VERSION}\"" ${CMAKE_CURRENT_LIST_DIR}/app/main.cpp
       -o ${dir}/consumer ${libs})
  step(${dir}/consumer)
elseif(MODE STREQUAL "mpi")
  step(${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR}/mpi_app -B ${dir}/app-build ${app_args})
  step(${CMAKE_COMMAND} --build ${dir}/app-build)
  string(REPLACE "|" ";" env "${MPI_ENV}")
  string(REPLACE "|" ";" flags "${MPIEXEC_FLAGS}")
  step(${CMAKE_COMMAND} -E env ${env} ${MPIEXEC} -n 2 ${flags} ${dir}/app-build/mpi_consumer)
else()
  step(${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR}/app -B ${dir}/app-build ${app_args})
  step(${CMAKE_COMMAND} --build ${dir}/app-build)
  step(${dir}/app-build/consumer)
endif()
