# Helpers shared by the library areas, the CLI, the tests and the benchmarks.

# Warnings and the shared precompiled header (owned by qface_core) for one of our targets.
function(qface_target_defaults tgt)
  target_compile_options(${tgt} PRIVATE ${QFACE_WARNINGS})
  if(QFACE_PCH AND NOT tgt STREQUAL "qface_core")
    target_precompile_headers(${tgt} REUSE_FROM qface_core)
  endif()
endfunction()

# qface_add_area(<area> [DEPS targets...]): a static library qface_<area> from
# every .cpp under src/qface/<area>, linked into the umbrella `qface` target.
function(qface_add_area area)
  cmake_parse_arguments(A "" "" "DEPS" ${ARGN})
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  if(NOT sources)
    message(STATUS "qface: area '${area}' has no sources yet; skipped")
    return()
  endif()
  add_library(qface_${area} STATIC ${sources})
  target_link_libraries(qface_${area} PUBLIC ${A_DEPS})
  if(NOT area STREQUAL "core")
    target_link_libraries(qface_${area} PUBLIC qface_core)
  endif()
  qface_target_defaults(qface_${area})
  target_link_libraries(qface INTERFACE qface_${area})
endfunction()
