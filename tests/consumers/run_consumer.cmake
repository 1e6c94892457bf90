# Builds and runs tests/consumers/app against mproc: MODE=find_package installs mproc into a scratch
# prefix first; MODE=add_subdirectory pulls the source tree in. Fails on any step's failure.
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

set(app_args -DMODE=${MODE} -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release)
if(MODE STREQUAL "find_package")
  step(${CMAKE_COMMAND} -S ${MPROC_SOURCE_DIR} -B ${dir}/mproc-build -DCMAKE_CXX_COMPILER=${CXX}
       -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_BUILD_BENCH=OFF -DMPROC_INSTALL=ON)
  step(${CMAKE_COMMAND} --build ${dir}/mproc-build) # the mproc-shm tool; the library itself is headers
  step(${CMAKE_COMMAND} --install ${dir}/mproc-build --prefix ${dir}/prefix)
  list(APPEND app_args -DCMAKE_PREFIX_PATH=${dir}/prefix)
else()
  list(APPEND app_args -DMPROC_SOURCE_DIR=${MPROC_SOURCE_DIR})
endif()
step(${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR}/app -B ${dir}/app-build ${app_args})
step(${CMAKE_COMMAND} --build ${dir}/app-build)
step(${dir}/app-build/consumer)
