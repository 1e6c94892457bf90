# mproc's one place that looks for MPI: included by mproc's own CMakeLists.txt (for mproc::mpi, the
# tests, examples and benchmarks) and by the installed mprocConfig.cmake for
# find_package(mproc COMPONENTS mpi). Nothing else in mproc depends on MPI.
#
# Sets MPROC_MPI_FOUND (MPI's C interface found). With a launcher also found, sets how mproc's own
# tests start a program under it, wherever they run (users may reuse them):
#   MPROC_MPIEXEC_FLAGS  more ranks than cores (--oversubscribe, an Open MPI flag);
#   MPROC_MPI_ENV        as root (CI containers); shared-memory transfers without ptrace rights
#                        (containers without CAP_SYS_PTRACE); ranks neither pinned to cores nor
#                        spinning when idle, as other tests run beside; under AddressSanitizer, Open
#                        MPI's own leaks not reported.
# Debian: apt-get install libopenmpi-dev openmpi-bin.
set(MPI_CXX_SKIP_MPICXX ON) # MPI-2's C++ bindings: unused, and noisy under -Wextra
find_package(MPI COMPONENTS CXX QUIET)
set(MPROC_MPI_FOUND ${MPI_CXX_FOUND})

if(MPI_CXX_FOUND AND MPIEXEC_EXECUTABLE)
  set(MPROC_MPIEXEC_FLAGS "")
  execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE _mproc_mpiexec_version ERROR_QUIET)
  if(_mproc_mpiexec_version MATCHES "Open MPI|OpenRTE")
    set(MPROC_MPIEXEC_FLAGS --oversubscribe)
  endif()
  unset(_mproc_mpiexec_version)
  set(MPROC_MPI_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_hwloc_base_binding_policy=none
    OMPI_MCA_mpi_yield_when_idle=1)
  if(CMAKE_CXX_FLAGS MATCHES "sanitize=address")
    list(APPEND MPROC_MPI_ENV "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1")
  endif()
endif()
