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
  # Installed as qface::<area> (src/qface/CMakeLists.txt).
  set_target_properties(qface_${area} PROPERTIES EXPORT_NAME ${area})
  set_property(GLOBAL APPEND PROPERTY QFACE_AREA_TARGETS qface_${area})
endfunction()

# qface_embed_files(<target> HEADER <h> FUNCTION <ns::fn> TYPE <ns::T> BASE <dir> FILES <f>...):
# compiles the files (relative to BASE) into <target> as `std::span<const T> fn()`
# declared in <h> (see cmake/embed_files.cmake); regenerated when a file changes.
function(qface_embed_files target)
  cmake_parse_arguments(A "" "HEADER;FUNCTION;TYPE;BASE" "FILES" ${ARGN})
  string(MAKE_C_IDENTIFIER "${A_FUNCTION}" stem)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${stem}.cpp)
  list(TRANSFORM A_FILES PREPEND ${A_BASE}/ OUTPUT_VARIABLE deps)
  string(REPLACE ";" "|" files "${A_FILES}")  # a list does not survive as one command argument
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DHEADER=${A_HEADER} -DFUNCTION=${A_FUNCTION} -DTYPE=${A_TYPE}
            -DBASE=${A_BASE} "-DFILES=${files}" -P ${CMAKE_SOURCE_DIR}/cmake/embed_files.cmake
    DEPENDS ${deps} ${CMAKE_SOURCE_DIR}/cmake/embed_files.cmake
    COMMENT "Embedding ${A_FILES} into ${target}"
    VERBATIM)
  target_sources(${target} PRIVATE ${out})
  # A few hundred KB of byte arrays: no use for the LibTorch precompiled header.
  set_source_files_properties(${out} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
endfunction()
